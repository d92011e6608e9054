"""Samplers and pruners from the names a sweep spec uses.

A sampler is built afresh for every trial, seeded from (sweep seed, trials so far): proposals are then
a function of the seed and the study's history only, so a resumed sweep proposes what an unbroken one
would, and workers on different machines never replay one random stream (the same seed in two
processes would otherwise propose the same first trials twice).
"""

from __future__ import annotations

from .definition import Sweep
from .space import Categorical, FloatRange, IntRange, Param


def startup_trials(sweep: Sweep, n_trials: int) -> int:
    """Trials proposed at random before the sampler uses the history."""
    if sweep.startup_trials is not None:
        return sweep.startup_trials
    return max(2, min(10, n_trials // 3))


def check_sampler_fits(sweep: Sweep) -> None:
    """Refuse a sampler that cannot search this space, before the study exists."""
    if sweep.sampler == "grid":
        loose = [p.binding for p in sweep.space if isinstance(p, FloatRange) and p.step is None]
        if loose:
            raise ValueError(f"Sweep.sampler = 'grid' needs discrete values; give {', '.join(loose)} a step")
    if sweep.sampler == "cmaes":
        categorical = [p.binding for p in sweep.space if isinstance(p, Categorical)]
        if categorical:
            raise ValueError(
                f"Sweep.sampler = 'cmaes' searches numbers only; {', '.join(categorical)} is categorical (use 'tpe')"
            )
        if len(sweep.space) < 2:
            raise ValueError("Sweep.sampler = 'cmaes' needs two or more parameters (use 'tpe' for one)")
        try:
            import cmaes  # noqa: F401
        except ImportError:
            raise ValueError("Sweep.sampler = 'cmaes' needs the 'cmaes' package: pip install cmaes") from None


def grid_size(space: tuple[Param, ...]) -> int:
    size = 1
    for p in space:
        size *= len(p.grid())
    return size


def make_sampler(sweep: Sweep, n_trials: int, draw: int):
    import optuna

    seed = sweep.seed * 1_000_003 + draw
    startup = startup_trials(sweep, n_trials)
    if sweep.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if sweep.sampler == "grid":  # grid points are enqueued by accounting.claim; nothing is sampled
        return optuna.samplers.RandomSampler(seed=seed)
    if sweep.sampler == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, n_startup_trials=startup, warn_independent_sampling=False)
    # constant_liar: a running trial counts as a bad result, so parallel workers spread out
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup, constant_liar=True)


def make_pruner(name: str, startup: int, warmup_epochs: int):
    import optuna

    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=startup, n_warmup_steps=warmup_epochs)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=max(1, warmup_epochs), reduction_factor=3)
    return optuna.pruners.NopPruner()


def suggest(trial, param: Param):
    """The trial's value for ``param`` (a re-queued trial returns the value it was first given)."""
    if isinstance(param, FloatRange):
        return trial.suggest_float(param.binding, param.low, param.high, log=param.log, step=param.step)
    if isinstance(param, IntRange):
        return trial.suggest_int(param.binding, param.low, param.high, step=param.step, log=param.log)
    return trial.suggest_categorical(param.binding, list(param.choices))
