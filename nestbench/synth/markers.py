"""Completion markers of the synthetic corpora: a corpus folder is finished when its marker names the
hash of the config that built it."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path

MARKER = ".complete"
IN_PROGRESS = ".in_progress"


def finished_hash(out: Path) -> str | None:
    """The config hash a finished build left in ``out``; ``None`` when unfinished or unreadable."""
    try:
        return json.loads((Path(out) / MARKER).read_text())["config_hash"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def claim(out: Path, files: Sequence[Path], folders: Sequence[Path], maker: str) -> None:
    """Make ``out`` ready for a fresh build: clear an earlier (finished or interrupted) build's ``files``
    and ``folders`` (left empty), and mark the build in progress. Files a build did not write (a real
    corpus, say) are refused, never deleted."""
    out = Path(out)
    ours = (out / MARKER).is_file() or (out / IN_PROGRESS).is_file()
    if not ours and (any(p.exists() for p in files) or any(d.is_dir() and any(d.iterdir()) for d in folders)):
        raise FileExistsError(f"{out} holds corpus files not written by {maker}; use an empty directory")
    out.mkdir(parents=True, exist_ok=True)
    (out / IN_PROGRESS).touch()
    (out / MARKER).unlink(missing_ok=True)
    for path in files:
        path.unlink(missing_ok=True)
    for folder in folders:
        if folder.is_dir():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
