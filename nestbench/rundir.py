"""Run folders: ``<runs>/<experiment>/<run-id>``, created atomically, never overwritten."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path


def new_run_dir(runs: Path, experiment: str) -> Path:
    """A fresh folder; if the id exists (two runs in one second), a suffix is added, never reused."""
    parent = Path(runs) / experiment
    parent.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    for n in range(1000):
        candidate = parent / (stamp if n == 0 else f"{stamp}-{n}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
    raise RuntimeError(f"could not allocate a run folder under {parent}")


def find_resumable(runs: Path, experiment: str) -> Path | None:
    """The newest run of ``experiment`` that has a config but no final metrics."""
    parent = Path(runs) / experiment
    if not parent.is_dir():
        return None
    candidates = [p for p in parent.iterdir() if (p / "config.gin").exists() and not (p / "metrics.json").exists()]
    return max(candidates, key=os.path.getmtime, default=None)
