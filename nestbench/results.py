"""The results store: one JSON line per finished run, appended under a lock, never rewritten.

Several processes (sweep workers) append to one file, so appends take an exclusive ``flock``.
A process killed mid-append leaves a torn last line: readers set it aside (in
``<store>.torn``) and repair the file, so every complete record survives.
"""

from __future__ import annotations

import json
import logging
import os
from contextlib import contextmanager
from pathlib import Path

from .fileio import file_lock

log = logging.getLogger(__name__)


class ResultsStoreError(ValueError):
    pass


class ResultsStore:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    def append(self, record: dict) -> None:
        line = json.dumps(record, sort_keys=True, default=str)
        if "\n" in line:
            raise ResultsStoreError("a result record must serialise to one line")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._locked():
            self._repair()
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(line + "\n")
                f.flush()
                os.fsync(f.fileno())

    def read(self) -> list[dict]:
        if not self.path.exists():
            return []
        with self._locked():
            self._repair()
            lines = self.path.read_text(encoding="utf-8").splitlines()
        records = []
        for n, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise ResultsStoreError(
                    f"{self.path}:{n}: corrupt record ({err.msg}); fix or remove that line"
                ) from None
        return records

    def _repair(self) -> None:
        """Move a torn (unterminated, unparsable) last line to ``.torn``; complete records stay."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            return
        with open(self.path, "rb+") as f:
            f.seek(-1, os.SEEK_END)
            if f.read(1) == b"\n":
                return
            data = f.seek(0) or f.read()
            cut = data.rfind(b"\n") + 1
            tail = data[cut:]
            try:
                json.loads(tail)
                f.write(b"\n")  # complete record that only lacks its newline
                return
            except (json.JSONDecodeError, UnicodeDecodeError):
                pass
            with open(self.path.with_name(self.path.name + ".torn"), "ab") as torn:
                torn.write(tail + b"\n")
            f.truncate(cut)
        log.warning("%s: set aside a truncated last line (%d bytes) in %s.torn", self.path, len(tail), self.path.name)

    @contextmanager
    def _locked(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with file_lock(self.path.with_name(self.path.name + ".lock")):
            yield
