"""``nestbench sweep``: Optuna searches over any gin binding, one ``nestbench run`` process per trial.

``definition``/``space``: what a sweep spec declares · ``plan``: checks it against the experiment ·
``storage``: SQLite/PostgreSQL, claim lock · ``samplers``: samplers and pruners · ``accounting``:
exactly N verdicts · ``driver``: prepare, then the worker loops · ``launch``: one trial process ·
``trial``: the trial's side (pruning reports) · ``report``: table, ``best.gin``, plots, status ·
``command``: the CLI.
"""

from .definition import Sweep
from .space import Categorical, FloatRange, IntRange

__all__ = ["Categorical", "FloatRange", "IntRange", "Sweep", "SweepError", "SweepOptions", "load_sweep", "run_sweep"]

_API = {"load_sweep": ".plan", "run_sweep": ".driver", "SweepOptions": ".driver", "SweepError": ".driver"}


def __getattr__(name: str):
    """The notebook API (``load_sweep``, ``run_sweep``, ``SweepOptions``), imported on first use so that
    the CLI's parser does not pay for torch and Optuna."""
    if name in _API:
        import importlib

        return getattr(importlib.import_module(_API[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
