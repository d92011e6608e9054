"""The composition root: the one module that knows gin.

Library components take typed arguments and never import gin; here they are registered as gin
configurables, a ``.gin`` spec (with its ``include``s and ``--gin`` overrides) is parsed into an
``Experiment``, and the operative config is captured for the run folder. Gin state is global and not
thread-safe, so every parse starts from ``gin.clear_config()``: one spec per process at a time.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib.util  # noqa: F401  -- gin 0.5.0's `include` needs importlib.util loaded on Python 3.11
import inspect
import io
import logging
import re
import tokenize
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import gin

from . import experiment as exp_module
from .encoder.tiny import make_tiny_nest
from .validation import BindingError

_BINDING = re.compile(r"^([A-Za-z_][\w./-]*)\s*=\s?(.*)$")


class SpecError(ValueError):
    """A spec that cannot be used; the message names file:line and suggests a fix when it can."""


def _configurables() -> dict[str, object]:
    from tasks import DATA_SOURCES, TASKS

    items: dict[str, object] = {
        "Experiment": exp_module.Experiment,
        "EncoderSetup": exp_module.EncoderSetup,
        "OptimizerSetup": exp_module.OptimizerSetup,
        "TrainerSetup": exp_module.TrainerSetup,
        "TrackingSetup": exp_module.TrackingSetup,
        "make_tiny_nest": make_tiny_nest,
    }
    for registry in (TASKS, DATA_SOURCES):
        for cls in registry.values():
            items[cls.__name__] = cls
    from .sweep.definition import Sweep
    from .sweep.space import Categorical, FloatRange, IntRange

    items.update(Sweep=Sweep, FloatRange=FloatRange, IntRange=IntRange, Categorical=Categorical)
    from .pretrain.setup import NestObjectiveSetup, PretrainExperiment
    from .pretrain.sources import ManifestAudio, SpeechMiniAudio

    items.update(
        PretrainExperiment=PretrainExperiment,
        NestObjectiveSetup=NestObjectiveSetup,
        ManifestAudio=ManifestAudio,
        SpeechMiniAudio=SpeechMiniAudio,
    )
    return items


_REGISTERED: dict[str, object] = {}


def _register() -> dict[str, object]:
    if not _REGISTERED:
        for name, obj in _configurables().items():
            gin.external_configurable(obj, name=name, module="nestbench")
            _REGISTERED[name] = obj
    return _REGISTERED


@dataclass(frozen=True)
class LoadedSpec:
    path: Path
    experiment: exp_module.Experiment  # or a ``PretrainExperiment``, for ``load_spec(..., root=...)``
    operative_config: str
    overrides: tuple[str, ...]


def project_root(spec: Path) -> Path:
    """The folder holding ``experiments/`` above the spec (includes are written relative to it)."""
    for parent in spec.resolve().parents:
        if (parent / "experiments").is_dir():
            return parent
    return spec.resolve().parent


def load_spec(path: str | Path, overrides: Sequence[str] = (), *, root: str = "Experiment") -> LoadedSpec:
    """Parse ``path`` + ``overrides`` (each a gin binding such as ``OptimizerSetup.lr = 3e-4``) into the
    configurable named ``root``: an ``Experiment``, or a ``PretrainExperiment`` for ``nestbench pretrain``."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"{path}: spec file not found")
    registered = _register()
    _tolerant_file_readers()
    _token_errors_name_their_file()
    gin.clear_config()
    for search in _search_paths(path):
        gin.add_config_file_search_path(str(search))
    try:
        with _quiet_gin():
            gin.parse_config_file(str(path))
            for n, text in enumerate(overrides, start=1):
                _parse_override(n, text, registered)
        _check_root(path, overrides, root)
        experiment = gin.get_configurable(registered[root])()
    except SpecError:
        raise
    except SyntaxError as err:
        where = f"{err.filename or path}:{err.lineno}" if err.lineno else str(err.filename or path)
        raise SpecError(_syntax_message(err, where)) from None
    except (ValueError, TypeError, KeyError, OSError) as err:
        if isinstance(err, ValueError) and _CALL.search(str(err)):  # a configurable refused its values
            raise SpecError(_located(err, path, overrides)) from None
        raise SpecError(_explain(err, registered)) from None
    operative = gin.operative_config_str()
    header = f"# spec: {path}\n" + "".join(f"# override: {o}\n" for o in overrides)
    return LoadedSpec(path, experiment, header + operative, tuple(overrides))


_ROOT_COMMANDS = {"Experiment": "nestbench run", "PretrainExperiment": "nestbench pretrain"}


def _check_root(path: Path, overrides: Sequence[str], root: str) -> None:
    """A pretraining spec given to ``nestbench run`` (or the reverse) says which command it is for,
    instead of gin's list of unbound required parameters."""
    bound = {b.name.split(".")[0] for b in _statements(path, overrides)}
    if root in bound:
        return
    for other, command in _ROOT_COMMANDS.items():
        if other != root and other in bound:
            raise SpecError(f"{path}: binds {other}, not {root}: it is a spec for `{command}`")


def _parse_override(n: int, text: str, registered: dict[str, object]) -> None:
    """Parse one ``--gin`` binding on its own, so that every error names it: gin would parse all of
    them as one joined string, whose line numbers read like lines of the spec file."""
    where = f"--gin override #{n} ({text!r})"
    try:
        gin.parse_config(text)
    except (SyntaxError, tokenize.TokenError) as err:
        err = _as_syntax_error(err, text)
        line = f", line {err.lineno}" if "\n" in text.strip() else ""
        raise SpecError(_syntax_message(err, where + line)) from None
    except (ValueError, TypeError, KeyError, OSError) as err:
        msg = re.sub(r"\n  In bindings string line \d+\n[^\n]*", "", _explain(err, registered))
        raise SpecError(f"{where}: {msg}") from None


@dataclass(frozen=True)
class _Bound:
    """One ``[scope/]Name.param = value`` (or ``MACRO = value``) statement and where it is."""

    scope: tuple[str, ...]
    name: str  # 'OptimizerSetup.lr', or a macro name
    value: str
    where: str


_CALL = re.compile(r"\n  In call to configurable '([^']+)' \([^\n]*?\)(?: in scope '([^']+)')?")
_STATEMENT = re.compile(r"^\s*(?:(?P<scope>[\w.-]+(?:/[\w.-]+)*)/)?(?P<name>[A-Za-z_][\w.]*)\s*=\s*(?P<value>.*)$")
_INCLUDE = re.compile(r"""^\s*include\s+(['"])(?P<path>.+?)\1""")


def _located(err: ValueError, spec: Path, overrides: Sequence[str]) -> str:
    """A configurable's refusal, prefixed with where its values were bound (last statement wins, as in
    gin) and without gin's "In call to configurable" trail. A ``BindingError`` names its bindings, and a
    value bound through a macro points at the macro's line; any other refusal points at every binding
    of the configurable that raised it."""
    text = str(err)
    call = _CALL.search(text)
    configurable = call.group(1).split(".")[-1]
    active = set(call.group(2).split("/")) if call.group(2) else set()
    message = text[: call.start()]
    statements = list(_statements(spec, overrides))
    if not isinstance(err, BindingError):
        places = [b.where for b in statements if b.name.startswith(configurable + ".") and set(b.scope) <= active]
        return f"{_join_places(places) or spec}: {message}"
    places, notes = [], []
    for binding in err.bindings:
        found = _last(statements, binding, active)
        if found is None:
            continue
        macro = re.fullmatch(r"%([A-Za-z_][\w.]*)", found.value.split("#")[0].strip())
        through = _last(statements, macro.group(1), set()) if macro else None
        if through is not None:
            notes.append(f"{binding} = %{macro.group(1)} at {found.where}")
            found = through
        places.append(found.where)
    where = _join_places(places) or f"{spec} (default values of {configurable})"
    return f"{where}: {message}" + (f" ({'; '.join(notes)})" if notes else "")


def _join_places(places: list[str]) -> str:
    """``a.gin:3, a.gin:4, --gin override #1 (...)`` -> ``a.gin:3,4, --gin override #1 (...)``."""
    lines: dict[str, list[str]] = {}
    for place in dict.fromkeys(places):
        file, _, line = place.rpartition(":")
        key, value = (file, line) if line.isdigit() else (place, "")
        lines.setdefault(key, []).append(value)
    return ", ".join(f"{k}:{','.join(v)}" if v[0] else k for k, v in lines.items())


def _last(statements: list[_Bound], name: str, active: set[str]) -> _Bound | None:
    """The statement gin applies to ``name`` in the active scope: the most specific scope, then the last."""
    fits = [(len(b.scope), i) for i, b in enumerate(statements) if b.name == name and set(b.scope) <= active]
    return statements[max(fits)[1]] if fits else None


def _statements(spec: Path, overrides: Sequence[str]):
    """Every binding statement in parse order: the spec with its includes expanded in place, then the
    ``--gin`` overrides. Only read after a value was refused, so a plain line scan is enough."""
    yield from _file_statements(spec, _search_paths(spec), set())
    for n, text in enumerate(overrides, start=1):
        for line in text.splitlines():
            yield from _statement(line, f"--gin override #{n} ({text!r})")


def _file_statements(path: Path, search: list[Path], seen: set[Path]):
    if path.resolve() in seen:
        return
    seen.add(path.resolve())
    shown = _shown(path)
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        include = _INCLUDE.match(line)
        if include:
            name = include.group("path")
            found = next((p for p in (Path(name), *(s / name for s in search)) if p.is_file()), None)
            if found is not None:
                yield from _file_statements(found, search, seen)
        else:
            yield from _statement(line, f"{shown}:{lineno}")


def _statement(line: str, where: str):
    m = None if line.lstrip().startswith("#") else _STATEMENT.match(line)
    if m:
        name = m.group("name")
        if "." in name:  # drop a module prefix: nestbench.OptimizerSetup.lr -> OptimizerSetup.lr
            name = ".".join(name.split(".")[-2:])
        yield _Bound(tuple(filter(None, (m.group("scope") or "").split("/"))), name, m.group("value"), where)


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _syntax_message(err: SyntaxError, where: str) -> str:
    return f"{where}: gin syntax error: {err.msg}\n    {(err.text or '').strip()}"


def _as_syntax_error(err: SyntaxError | tokenize.TokenError, text: str, filename: str | None = None) -> SyntaxError:
    """gin's parser lets Python's ``TokenError`` out for a bracket or string left open at the end of the
    text, reporting only the end; as a ``SyntaxError`` it points at the line where the bracket opened."""
    if isinstance(err, SyntaxError):
        return err
    msg, (line, col) = err.args
    opened = []
    with contextlib.suppress(tokenize.TokenError):
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type == tokenize.OP and tok.string in "([{":
                opened.append(tok)
            elif tok.type == tokenize.OP and tok.string in ")]}" and opened:
                opened.pop()
    if opened:
        msg, (line, col) = f"'{opened[-1].string}' is never closed", opened[-1].start
    lines = text.splitlines()
    return SyntaxError(msg, (filename, line, col + 1, lines[line - 1] if 0 < line <= len(lines) else ""))


def _token_errors_name_their_file() -> None:
    """Wrap gin's file readers so that a ``TokenError`` leaves a spec file (or an included one) as a
    ``SyntaxError`` naming that file and line; the tokenizer itself knows neither."""
    readers = gin.config._FILE_READERS
    for i, (reader, exists) in enumerate(readers):
        if getattr(reader, "_nestbench_names_file", False):
            continue

        @contextlib.contextmanager
        def named(path, _reader=reader):
            with _reader(path) as f:
                try:
                    yield f
                except tokenize.TokenError as err:
                    with _reader(path) as again:
                        text = again.read()
                    text = text.decode("utf-8") if isinstance(text, bytes) else text
                    raise _as_syntax_error(err, text, str(path)) from None

        named._nestbench_names_file = True
        readers[i] = (named, exists)


def operative_bindings(operative: str) -> dict[str, str]:
    """``{'OptimizerSetup.lr': '0.001', 'ENCODER': '@make_tiny_nest()', ...}`` from an operative config."""
    out: dict[str, str] = {}
    key = None
    for line in operative.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = _BINDING.match(line)
        if m and not line[0].isspace():
            key = m.group(1)
            out[key] = m.group(2).strip()
        elif key is not None:
            out[key] += " " + line.strip()  # continuation of a multi-line value
    return out


def _tolerant_file_readers() -> None:
    """gin 0.5.0 also looks for included files as Python package resources; when a folder such as
    ``experiments/`` is importable as a namespace package (cwd on ``sys.path``) that lookup raises
    TypeError instead of answering "not found". Make every registered existence check answer False
    on error, so the ordinary search paths decide."""
    readers = gin.config._FILE_READERS
    for i, (reader, exists) in enumerate(readers):
        if getattr(exists, "_nestbench_tolerant", False):
            continue

        def tolerant(path, _exists=exists):
            try:
                return _exists(path)
            except (TypeError, ValueError, ImportError):
                return False

        tolerant._nestbench_tolerant = True
        readers[i] = (reader, tolerant)


def _search_paths(spec: Path) -> list[Path]:
    """Includes resolve against: the spec's project root, the spec's folder, the working directory,
    and the nestbench checkout itself (so shipped specs can be included from anywhere)."""
    shipped = Path(__file__).resolve().parents[1]
    paths = [project_root(spec), spec.resolve().parent, Path.cwd()]
    if (shipped / "experiments").is_dir():
        paths.append(shipped)
    return list(dict.fromkeys(paths))


@contextlib.contextmanager
def _quiet_gin():
    """gin logs every include-path probe (``Path not found``) at ERROR; failures still raise."""
    previous = logging.root.manager.disable
    logging.disable(logging.ERROR)
    try:
        yield
    finally:
        logging.disable(previous)


def _explain(err: Exception, registered: dict[str, object]) -> str:
    msg = str(err)
    unknown = re.search(r"No configurable matching '([^']+)'", msg)
    if unknown:
        name = unknown.group(1).split("/")[-1]
        hint = difflib.get_close_matches(name, list(registered), n=1)
        return msg + (f"\n  did you mean '{hint[0]}'?" if hint else f"\n  known: {', '.join(sorted(registered))}")
    param = re.search(r"Configurable '([^']+)' doesn't have a parameter named '([^']+)'", msg)
    if param:
        target = registered.get(param.group(1).split("/")[-1])
        names = list(inspect.signature(target).parameters) if target is not None else []
        hint = difflib.get_close_matches(param.group(2), names, n=1)
        return msg + (f"\n  did you mean '{hint[0]}'?" if hint else f"\n  parameters: {', '.join(names)}")
    macro = re.search(r"macro '?%?([A-Za-z_][\w.]*)'?", msg)
    if macro and "acro" in msg:
        return msg + "\n  define it in the spec (NAME = value) or pass --gin 'NAME = value'"
    if "Required bindings" in msg or "REQUIRED" in msg:
        return msg + "\n  bind it in the spec or pass --gin '<Configurable>.<param> = value'"
    return msg
