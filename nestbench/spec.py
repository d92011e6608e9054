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
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import gin

from . import experiment as exp_module
from .encoder.tiny import make_tiny_nest


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
    experiment: exp_module.Experiment
    operative_config: str
    overrides: tuple[str, ...]


def project_root(spec: Path) -> Path:
    """The folder holding ``experiments/`` above the spec (includes are written relative to it)."""
    for parent in spec.resolve().parents:
        if (parent / "experiments").is_dir():
            return parent
    return spec.resolve().parent


def load_spec(path: str | Path, overrides: Sequence[str] = ()) -> LoadedSpec:
    """Parse ``path`` + ``overrides`` (each a gin binding such as ``OptimizerSetup.lr = 3e-4``)."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"{path}: spec file not found")
    registered = _register()
    _tolerant_file_readers()
    gin.clear_config()
    for search in _search_paths(path):
        gin.add_config_file_search_path(str(search))
    try:
        with _quiet_gin():
            gin.parse_config_files_and_bindings([str(path)], list(overrides), finalize_config=False)
        experiment = gin.get_configurable(exp_module.Experiment)()
    except SyntaxError as err:
        where = f"{err.filename or path}:{err.lineno}" if err.lineno else str(err.filename or path)
        raise SpecError(f"{where}: gin syntax error: {err.msg}\n    {(err.text or '').strip()}") from None
    except (ValueError, TypeError, KeyError, OSError) as err:
        raise SpecError(_explain(err, registered)) from None
    operative = gin.operative_config_str()
    header = f"# spec: {path}\n" + "".join(f"# override: {o}\n" for o in overrides)
    return LoadedSpec(path, experiment, header + operative, tuple(overrides))


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
