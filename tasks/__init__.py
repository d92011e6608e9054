"""Task adapters: one file per task family, listed here explicitly (never found by import side effects).

A new task is one file in this folder (implementing ``nestbench.task.Task``), one line in ``TASKS``
(and its data sources in ``DATA_SOURCES``), and one spec in ``experiments/``.
"""

from nestbench.data import ManifestData

from .slu import MiniSlurpData, SlurpData, SluTask

TASKS = {"slu": SluTask}
DATA_SOURCES = {"manifests": ManifestData, "slurp": SlurpData, "mini_slurp": MiniSlurpData}

__all__ = ["DATA_SOURCES", "TASKS"]
