"""What a sweep shows: the per-trial progress line, the summary table, ``best.gin`` and the plots.

Everything here reads the study (and the definition stored with it), so ``--status`` can print the
same table for a study that is running on other machines, without the sweep spec at hand.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
import warnings
from pathlib import Path

from .space import binding_line

log = logging.getLogger(__name__)

DEFINITION = "nestbench.definition"  # study user attrs, written when the study is created
EXPERIMENT_SPEC = "nestbench.experiment_spec"
TARGET = "nestbench.trials"
PLOTS = {
    "history.png": "plot_optimization_history",
    "importances.png": "plot_param_importances",
    "parallel.png": "plot_parallel_coordinate",
}


def fmt_value(value) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def fmt_params(params: dict) -> str:
    return "  ".join(f"{k}={fmt_value(v)}" for k, v in params.items())


def short(binding: str) -> str:
    """``'OptimizerSetup.lr'`` -> ``'lr'`` for column headers (the full name is in the legend)."""
    return binding.rsplit(".", 1)[-1]


def best_trial(study):
    from optuna.trial import TrialState

    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.value is not None]
    if not done:
        return None
    maximize = study.direction.name == "MAXIMIZE"
    return max(done, key=lambda t: t.value) if maximize else min(done, key=lambda t: t.value)


def seconds(trial) -> str:
    if trial.datetime_start is None:
        return "-"
    end = trial.datetime_complete.timestamp() if trial.datetime_complete else time.time()
    return f"{end - trial.datetime_start.timestamp():.0f}s"


def summary_table(study, objective: str, bindings: list[str]) -> str:
    """One row per trial: number, state, objective (for a stopped trial, the last value the pruner
    saw), each swept value, duration, run folder."""
    best = best_trial(study)
    definition = study.user_attrs.get(DEFINITION) or {}
    watched, sign = definition.get("prune_on", objective), int(definition.get("prune_sign", 1))
    headers = ["trial", "state", objective, *(short(b) for b in bindings), "time", "run"]
    rows = []
    for t in study.get_trials(deepcopy=False):
        mark = "*" if best is not None and t.number == best.number else " "
        if t.state.name == "COMPLETE" and t.value is not None:  # Optuna gives a pruned trial its last report
            shown = fmt_value(t.value)
        elif t.intermediate_values:
            epoch, last = max(t.intermediate_values.items())
            shown = f"({watched}={fmt_value(sign * last)} at epoch {epoch})"
        else:
            shown = "-"
        run = t.user_attrs.get("run_dir") or ""
        rows.append(
            [
                f"{mark}{t.number}",
                t.state.name,
                shown,
                *(fmt_value(t.params.get(b, "-")) for b in bindings),
                seconds(t),
                "/".join(Path(run).parts[-2:]) if run else "",
            ]
        )
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [headers, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    legend = [f"  {short(b)} = {b}" for b in bindings]
    return "\n".join([*lines, "", "* best", *legend])


def write_best_gin(path: Path, *, study, trial, experiment_spec: str, objective: str, storage: str) -> Path:
    """The experiment spec with the best trial's values: ``nestbench run best.gin`` reproduces it."""
    threads = trial.user_attrs.get("threads")
    lines = [
        f"# Best trial of sweep study '{study.study_name}': trial #{trial.number}, {objective} = {trial.value!r}",
        f"# ({study.direction.name.lower()}; storage {storage})",
        f"# Runs: {experiment_spec} with the swept values, seed and CPU thread count of that trial",
        "#   (on CPU, PyTorch's results depend on the thread count; drop that line on a GPU). Run it where the",
        "#   sweep ran: a frozen encoder's features then come from the same feature cache, bit for bit.",
        f"# Command: nestbench run {path}",
        "",
        f"include '{experiment_spec}'",
        "",
        *(binding_line(k, v) for k, v in trial.params.items()),
        binding_line("Experiment.seed", trial.user_attrs["seed"]),
        *([binding_line("TrainerSetup.cpu_threads", int(threads))] if threads else []),
        "",
    ]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def write_plots(study, folder: Path) -> list[Path]:
    """Optuna's matplotlib views, beside the study. A plot that cannot be drawn yet (too few finished
    trials) is skipped with a note, never an error."""
    import matplotlib
    import optuna
    from optuna.trial import TrialState

    complete = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    if complete < 2:
        log.info("plots skipped: %d complete trial(s), they need 2", complete)
        return []
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna.visualization.matplotlib as views

    written = []
    for name, fn in PLOTS.items():
        try:
            with warnings.catch_warnings(), _optuna_quiet(optuna):
                warnings.simplefilter("ignore")
                getattr(views, fn)(study)
            fig = plt.gcf()  # each view draws into a new figure
            fig.set_size_inches(9, 5.5)
            fig.tight_layout()
            fig.savefig(folder / name, dpi=100)
            plt.close(fig)
            written.append(folder / name)
        except Exception as err:  # noqa: BLE001 - a missing plot must not fail a finished sweep
            log.info("plot %s skipped: %s", name, err)
    return written


@contextlib.contextmanager
def _optuna_quiet(optuna):
    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(previous)


def status_text(study) -> str:
    """Counts by state, the target, the best so far and the table: ``nestbench sweep --status``."""
    from collections import Counter

    definition = study.user_attrs.get(DEFINITION) or {}
    bindings = [p["binding"] for p in definition.get("space", [])]
    objective = definition.get("objective", "value")
    trials = study.get_trials(deepcopy=False)
    counts = Counter(t.state.name for t in trials)
    best = best_trial(study)
    head = [
        f"study {study.study_name}: {len(trials)} trials ("
        + ", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items()))
        + ")"
        + (f"; target {study.user_attrs[TARGET]}" if TARGET in study.user_attrs else ""),
        f"experiment: {study.user_attrs.get(EXPERIMENT_SPEC, '?')}; objective {objective} "
        f"({study.direction.name.lower()})",
        f"best: #{best.number} {objective} = {fmt_value(best.value)}  {fmt_params(best.params)}"
        if best
        else "best: none yet",
        "",
    ]
    return "\n".join(head) + summary_table(study, objective, bindings)
