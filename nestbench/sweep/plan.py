"""From a sweep spec to a checked plan: every mistake that would waste trials is caught here.

The sweep spec is parsed once (it builds the experiment and the ``Sweep`` note), then the experiment
spec it includes is parsed on its own: that is exactly what each trial will run. Swept bindings are
checked against that experiment's operative config (the parameters its configurables really take),
the objective against the task's metrics, and the sweep spec may not quietly change the experiment
(trials would not run what the user read).
"""

from __future__ import annotations

import difflib
import inspect
import json
import re
from dataclasses import dataclass
from pathlib import Path

from ..experiment import Experiment
from ..spec import SpecError, _register, _search_paths, load_spec, operative_bindings
from ..task import metric as task_metric
from ..task import metric_names
from .definition import Sweep, safe_study_name, split_of
from .space import Categorical, FloatRange, IntRange, Param, binding_line

SWEEP_CONFIGURABLES = ("Sweep", "FloatRange", "IntRange", "Categorical")
_INCLUDE = re.compile(r"""^\s*include\s+['"]([^'"]+)['"]""", re.MULTILINE)


@dataclass(frozen=True)
class SweepPlan:
    spec: Path  # the sweep spec
    experiment_spec: Path  # what every trial runs (resolved, absolute)
    sweep: Sweep
    experiment: Experiment
    metric: str  # e.g. 'intent_acc'
    direction: str  # 'maximize' | 'minimize'
    study: str  # default study name
    prune_metric: str = ""  # the dev metric the pruner compares (default: the objective's)
    prune_sign: int = 1  # -1: reported negated (better in the other direction than the objective)

    @property
    def objective(self) -> str:
        return f"dev/{self.metric}"

    @property
    def prune_on(self) -> str:
        return f"dev/{self.prune_metric or self.metric}"

    def definition(self) -> dict:
        """What makes two sweep processes the same search (stored with the study, compared on join)."""
        s = self.sweep
        return {
            "space": [_describe(p) for p in s.space],
            "objective": self.objective,
            "direction": self.direction,
            "sampler": s.sampler,
            "seed": s.seed,
            "pruner": s.pruner,
            "startup_trials": s.startup_trials,
            "prune_after": s.prune_after,
            "warmup_epochs": s.warmup_epochs,
            "prune_on": self.prune_on,
            "prune_sign": self.prune_sign,
            "vary_seed": s.vary_seed,
            "experiment": self.experiment.name,
        }


def load_sweep(path: str | Path) -> SweepPlan:
    path = Path(path)
    try:
        loaded = load_spec(path)
    except SpecError as err:  # a bad range surfaces from gin without the file it came from
        raise (err if str(path) in str(err) else SpecError(f"{path}: {err}")) from None
    sweep = loaded.experiment.notes.get("sweep") if isinstance(loaded.experiment.notes, dict) else None
    if not isinstance(sweep, Sweep):
        raise SpecError(f"{path}: not a sweep spec; it needs Experiment.notes = {{'sweep': @Sweep()}} and Sweep.space")
    experiment_spec = _experiment_spec(path, sweep)
    base = load_spec(experiment_spec)  # exactly what a trial parses, before its overrides
    _check_no_stray_bindings(path, experiment_spec, loaded.operative_config, base.operative_config)
    keys = operative_bindings(base.operative_config)
    for param in sweep.space:
        _check_binding(param, keys, experiment_spec)
        _check_values(param, path, experiment_spec)
    metric, direction = _objective(sweep, base.experiment, path)
    prune_metric, prune_sign = _prune_on(sweep, base.experiment, path, metric, direction)
    study = safe_study_name(sweep.study or f"{base.experiment.name}-{path.stem}")
    return SweepPlan(path, experiment_spec, sweep, base.experiment, metric, direction, study, prune_metric, prune_sign)


def _experiment_spec(path: Path, sweep: Sweep) -> Path:
    if sweep.experiment:
        target = sweep.experiment
    else:
        includes = _INCLUDE.findall(path.read_text(encoding="utf-8"))
        if len(includes) != 1:
            raise SpecError(
                f"{path}: {len(includes)} includes; set Sweep.experiment = '<spec>' to say which one the trials run"
            )
        target = includes[0]
    candidates = [Path(target)] if Path(target).is_absolute() else [p / target for p in _search_paths(path)]
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    raise SpecError(f"{path}: experiment spec '{target}' not found (looked in {', '.join(map(str, candidates))})")


def _configurable_of(key: str) -> str:
    return key.rsplit(".", 1)[0].split("/")[-1] if "." in key else ""


def _check_no_stray_bindings(sweep_spec: Path, experiment_spec: Path, swept: str, base: str) -> None:
    def experiment_only(operative: str) -> dict[str, str]:
        return {
            k: v
            for k, v in operative_bindings(operative).items()
            if _configurable_of(k) not in SWEEP_CONFIGURABLES and k != "Experiment.notes"
        }

    a, b = experiment_only(swept), experiment_only(base)
    changed = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
    if changed:
        raise SpecError(
            f"{sweep_spec}: changes the experiment it sweeps ({', '.join(changed)}), but trials run "
            f"{experiment_spec} as it is; move those bindings into an experiment spec and include that"
        )


def _check_binding(param: Param, keys: dict[str, str], experiment_spec: Path) -> None:
    binding = param.binding
    found = binding in keys or ("/" not in binding and any(k.endswith("/" + binding) for k in keys))
    if not found:
        names = sorted(set(keys) | {k.split("/")[-1] for k in keys})
        hint = difflib.get_close_matches(binding, names, n=1, cutoff=0.6)
        if not hint and "." in binding:  # right parameter, wrong configurable (or vice versa)
            param_name = binding.rsplit(".", 1)[1]
            hint = [n for n in names if n.endswith("." + param_name)][:1]
        raise SpecError(
            f"Sweep.space: '{binding}' is not a binding of {experiment_spec.name} (its configurables take no such "
            f"parameter)" + (f"\n  did you mean '{hint[0]}'?" if hint else "")
        )
    if isinstance(param, FloatRange) and not param.step and _annotation(binding) == "int":
        raise SpecError(f"Sweep.space: '{binding}' takes an int; sweep it with IntRange")


def _check_values(param: Param, sweep_spec: Path, experiment_spec: Path) -> None:
    """Each end of a range and each choice must be a value the binding allows (the setup objects' own
    checks, as a trial would meet them), or some trials would fail before they start."""
    values = param.choices if isinstance(param, Categorical) else (param.low, param.high)
    for value in dict.fromkeys(values):
        line = binding_line(param.binding, value)
        try:
            load_spec(experiment_spec, [line])
        except SpecError as err:
            message = str(err).removeprefix(f"--gin override #1 ({line!r}): ")
            raise SpecError(
                f"{sweep_spec}: Sweep.space over {param.binding} includes {value!r}, refused: {message}"
            ) from None


def _annotation(binding: str) -> str | None:
    if "." not in binding:
        return None
    target = _register().get(_configurable_of(binding))
    try:
        parameter = inspect.signature(target).parameters.get(binding.rsplit(".", 1)[1]) if target else None
    except (TypeError, ValueError):
        return None
    if parameter is None or parameter.annotation is inspect.Parameter.empty:
        return None
    return parameter.annotation if isinstance(parameter.annotation, str) else parameter.annotation.__name__


def _objective(sweep: Sweep, experiment: Experiment, path: Path) -> tuple[str, str]:
    task = experiment.task
    names = metric_names(task)
    _, metric = split_of(sweep.objective or f"dev/{names[0]}")
    if metric not in names:
        hint = difflib.get_close_matches(metric, names, n=1)
        raise SpecError(
            f"{path}: Sweep.objective '{sweep.objective}': task '{task.name}' reports no metric '{metric}'"
            + (f"; did you mean 'dev/{hint[0]}'?" if hint else "")
            + f" (it reports {', '.join(names)})"
        )
    natural = "maximize" if task_metric(task, metric).direction == "max" else "minimize"
    if sweep.direction is not None and sweep.direction != natural:
        better = "higher" if natural == "maximize" else "lower"
        raise SpecError(
            f"{path}: Sweep.direction = '{sweep.direction}', but {metric} is better when {better}; "
            f"that would search for the worst model (leave Sweep.direction unset)"
        )
    return metric, natural


def _prune_on(sweep: Sweep, experiment: Experiment, path: Path, metric: str, direction: str) -> tuple[str, int]:
    """The metric the pruner watches (the task's metrics or the dev loss) and its sign towards ``direction``."""
    if sweep.prune_on is None:
        return metric, 1
    _, watched = split_of(sweep.prune_on, "prune_on")
    task = experiment.task
    known = (*metric_names(task), *(("loss",) if task.dev_loss else ()))
    if watched not in known:
        hint = difflib.get_close_matches(watched, list(known), n=1)
        raise SpecError(
            f"{path}: Sweep.prune_on '{sweep.prune_on}': task '{task.name}' logs no dev metric '{watched}'"
            + (f"; did you mean 'dev/{hint[0]}'?" if hint else "")
            + f" (it logs {', '.join(f'dev/{k}' for k in known)})"
        )
    better = "min" if watched == "loss" else task_metric(task, watched).direction
    return watched, 1 if (better == "max") == (direction == "maximize") else -1


def _describe(param: Param) -> dict:
    if isinstance(param, Categorical):
        return {"binding": param.binding, "kind": "categorical", "choices": list(param.choices)}
    kind = "int" if isinstance(param, IntRange) else "float"
    return {
        "binding": param.binding,
        "kind": kind,
        "low": param.low,
        "high": param.high,
        "log": param.log,
        "step": param.step,
    }


def definition_json(plan: SweepPlan) -> str:
    return json.dumps(plan.definition(), sort_keys=True)
