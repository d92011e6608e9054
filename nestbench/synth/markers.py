"""Completion markers of the synthetic corpora: a corpus folder is finished when its marker names the
hash of the config that built it."""

from __future__ import annotations

import json
from pathlib import Path

MARKER = ".complete"
IN_PROGRESS = ".in_progress"


def finished_hash(out: Path) -> str | None:
    """The config hash a finished build left in ``out``; ``None`` when unfinished or unreadable."""
    try:
        return json.loads((Path(out) / MARKER).read_text())["config_hash"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
