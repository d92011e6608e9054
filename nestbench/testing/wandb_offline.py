"""Read what an offline W&B run recorded, straight from its ``run-*.wandb`` file.

The file is a sequence of protobuf ``Record``s in a LevelDB-style log (32 KiB blocks; each chunk
has a 7-byte header: crc32, length, type FULL/FIRST/MIDDLE/LAST). Tests use this to check what a
run logged without a W&B server.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path

_BLOCK = 32768
_HEADER = 7


@dataclass
class OfflineRun:
    path: Path
    name: str = ""
    group: str = ""
    config: dict = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)
    summary: dict = field(default_factory=dict)

    def files(self, pattern: str = "**/*") -> list[Path]:
        return sorted(p for p in (self.path.parent / "files").glob(pattern) if p.is_file())


def _records(data: bytes):
    pos, pending = _HEADER, b""
    while pos + _HEADER <= len(data):
        left = _BLOCK - pos % _BLOCK
        if left < _HEADER:
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + _HEADER])
        if kind == 0 and length == 0:
            pos += left
            continue
        chunk = data[pos + _HEADER : pos + _HEADER + length]
        pos += _HEADER + length
        if kind == 1:
            yield chunk
        elif kind == 2:
            pending = chunk
        elif kind == 3:
            pending += chunk
        elif kind == 4:
            yield pending + chunk
            pending = b""


def _items(items) -> dict:
    out = {}
    for it in items:
        key = "/".join(it.nested_key) if len(it.nested_key) else it.key
        try:
            out[key] = json.loads(it.value_json)
        except json.JSONDecodeError:
            out[key] = it.value_json
    return out


def read_offline_run(run_folder: str | Path) -> OfflineRun:
    """``run_folder``: a ``wandb/offline-run-*`` folder, or a folder containing exactly one."""
    from wandb.proto import wandb_internal_pb2 as pb

    folder = Path(run_folder)
    if not folder.name.startswith("offline-run-"):
        found = sorted(folder.glob("**/offline-run-*"))
        if len(found) != 1:
            raise FileNotFoundError(f"{folder}: expected one offline W&B run, found {len(found)}")
        folder = found[0]
    (path,) = folder.glob("run-*.wandb")
    run = OfflineRun(path)
    for data in _records(path.read_bytes()):
        rec = pb.Record()
        rec.ParseFromString(data)
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            run.name, run.group = rec.run.display_name, rec.run.run_group
            run.config.update(_items(rec.run.config.update))
        elif kind == "config":
            run.config.update(_items(rec.config.update))
        elif kind == "history":
            run.history.append(_items(rec.history.item))
        elif kind == "summary":
            run.summary.update(_items(rec.summary.update))
    return run
