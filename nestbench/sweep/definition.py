"""``Sweep``: what a sweep spec declares, as one plain object (gin binds it; Python can build it).

A sweep spec is an experiment spec plus one note: ``Experiment.notes = {'sweep': @Sweep()}``. The
note rides on the experiment so that ``load_spec`` builds both in one parse and nothing but
``spec.py`` needs gin. Trials run the included experiment spec, never the sweep spec.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from .space import Param, check_space

SAMPLERS = ("tpe", "random", "grid", "cmaes")
PRUNERS = ("median", "hyperband", "none")
DIRECTIONS = ("maximize", "minimize")
OBJECTIVE_SPLIT = "dev"  # sweeps select on dev; test is scored by each run but never optimised


@dataclass(frozen=True)
class Sweep:
    """The search over an experiment.

    ``space``: the swept bindings (``FloatRange``, ``IntRange``, ``Categorical``).
    ``objective``: ``'dev/<metric>'`` (or just ``'<metric>'``), a metric the task reports; the default
    is the task's headline metric. The value told to the study is the run's final dev score (best
    checkpoint); the pruner sees the dev score after each validation.
    ``direction``: ``'maximize'``/``'minimize'``; the default is the task's own direction for the metric.
    ``sampler``: ``'tpe'`` (default), ``'random'``, ``'grid'`` (every parameter discrete), ``'cmaes'``
    (numbers only, two or more of them). ``seed`` makes the proposals reproducible.
    ``startup_trials``: trials proposed at random before the sampler models the results (default: a
    third of the budget, 2 to 10).
    ``pruner``: ``'median'`` (default), ``'hyperband'`` or ``'none'``. ``prune_after``: finished trials
    the median pruner compares against before it prunes (default 1: with a budget of ten trials, every
    trial run to the end that a pruner could have stopped is most of the sweep's cost).
    ``warmup_epochs``: epochs before a trial can be pruned.
    ``prune_on``: the dev metric the pruner compares after each validation (default: the objective).
    ``'dev/loss'`` separates trials from the first validation, when an accuracy may still sit at chance
    for every trial; a metric better in the other direction than the objective is told to the study
    negated, so the pruner's "better" stays the study's.
    ``experiment``: the spec trials run; default: the sweep spec's only ``include``.
    ``study``: the study name; default ``<experiment name>-<sweep spec stem>``.
    ``vary_seed``: give trial n the seed ``Experiment.seed + n`` (default: every trial keeps the
    experiment's seed, so trials differ only in the swept values).
    ``max_retries``: how often a trial interrupted by a crash is run again.
    """

    space: Sequence[Param]
    objective: str | None = None
    direction: Literal["maximize", "minimize"] | None = None
    sampler: Literal["tpe", "random", "grid", "cmaes"] = "tpe"
    seed: int = 0
    pruner: Literal["median", "hyperband", "none"] = "median"
    startup_trials: int | None = None
    prune_after: int = 1
    warmup_epochs: int = 0
    prune_on: str | None = None
    experiment: str | None = None
    study: str | None = None
    vary_seed: bool = False
    max_retries: int = 3

    def __post_init__(self) -> None:
        object.__setattr__(self, "space", check_space(self.space))
        if self.sampler not in SAMPLERS:
            raise ValueError(f"Sweep.sampler = {self.sampler!r}: expected one of {', '.join(SAMPLERS)}")
        if self.pruner not in PRUNERS:
            raise ValueError(f"Sweep.pruner = {self.pruner!r}: expected one of {', '.join(PRUNERS)}")
        if self.direction is not None and self.direction not in DIRECTIONS:
            raise ValueError(f"Sweep.direction = {self.direction!r}: expected 'maximize' or 'minimize'")
        for name, value in (("objective", self.objective), ("prune_on", self.prune_on)):
            if value is not None:
                split_of(value, name)
        if self.startup_trials is not None and self.startup_trials < 0:
            raise ValueError(f"Sweep.startup_trials = {self.startup_trials}: must be >= 0")
        if min(self.prune_after, self.warmup_epochs, self.max_retries) < 0:
            raise ValueError("Sweep.prune_after, Sweep.warmup_epochs and Sweep.max_retries must be >= 0")
        if self.study is not None and not _safe_name(self.study):
            raise ValueError(f"Sweep.study = {self.study!r}: use letters, digits, '.', '_' and '-'")


def split_of(objective: str, field: str = "objective") -> tuple[str, str]:
    """``'dev/intent_acc'`` -> ``('dev', 'intent_acc')``; a bare metric means dev; any other split is refused."""
    if not isinstance(objective, str) or not objective.strip():
        raise ValueError(f"Sweep.{field} = {objective!r}: expected 'dev/<metric>'")
    split, sep, metric = objective.strip().rpartition("/")
    split = split if sep else OBJECTIVE_SPLIT
    if split != OBJECTIVE_SPLIT:
        why = " (test scores must never steer a search)" if split == "test" else ""
        raise ValueError(
            f"Sweep.{field} = {objective!r}: sweeps optimise a dev metric, not '{split}'{why}; use 'dev/{metric}'"
        )
    return split, metric


def _safe_name(name: str) -> bool:
    return bool(name) and all(c.isalnum() or c in "._-" for c in name) and not name.startswith(".")


def safe_study_name(name: str) -> str:
    if not _safe_name(name):
        raise ValueError(f"study name {name!r}: use letters, digits, '.', '_' and '-'")
    return name
