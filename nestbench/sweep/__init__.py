"""``nestbench sweep``: Optuna searches over any gin binding, one ``nestbench run`` process per trial.

``definition``/``space``: what a sweep spec declares · ``plan``: checks it against the experiment ·
``storage``: SQLite/PostgreSQL, claim lock · ``samplers``: samplers and pruners · ``accounting``:
exactly N verdicts · ``driver``: prepare, then the worker loops · ``launch``: one trial process ·
``trial``: the trial's side (pruning reports) · ``report``: table, ``best.gin``, plots, status ·
``command``: the CLI.
"""

from .definition import Sweep
from .space import Categorical, FloatRange, IntRange

__all__ = ["Categorical", "FloatRange", "IntRange", "Sweep"]
