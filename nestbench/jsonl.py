"""JSON-lines reading with errors that name file and line (manifests, annotations, predictions)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def iter_jsonl(path: Path, error: type[Exception] = ValueError) -> Iterator[tuple[int, str, dict[str, Any]]]:
    """Yield (line number, raw line, object) per non-blank line; a non-object or bad JSON raises ``error``."""
    with Path(path).open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as err:
                raise error(f"{path}:{lineno}: not valid JSON ({err.msg} at column {err.colno})") from None
            if not isinstance(item, dict):
                raise error(f"{path}:{lineno}: expected a JSON object, got {type(item).__name__}")
            yield lineno, line.rstrip("\n"), item
