"""Weights whose pickle would run code are refused by `weights_only=True`, and the code never runs."""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from nestbench.checkpoint import CheckpointError, load_nemo


class FileWriter:
    """Unpickling this calls `open(marker, "w")`, creating the marker: visible proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


class ShellCommand:
    """Unpickling this runs a shell command through `os.system`."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def torch_saved(payload: object) -> bytes:
    buffer = io.BytesIO()
    torch.save({"encoder.w": torch.zeros(2), "encoder.evil": payload}, buffer)
    return buffer.getvalue()


def plain_pickled(payload: object) -> bytes:
    buffer = io.BytesIO()
    pickle.dump({"encoder.w": torch.zeros(2), "encoder.evil": payload}, buffer, protocol=2)
    return buffer.getvalue()


CASES = {
    "torch.save-open": (FileWriter, torch_saved),
    "torch.save-os.system": (ShellCommand, torch_saved),
    "pickle-open": (FileWriter, plain_pickled),
}


def test_payload_is_live(tmp_path: Path) -> None:
    """Guard for the tests below: the payload really does write when unpickled unsafely."""
    marker = tmp_path / "proof"
    handle = pickle.loads(pickle.dumps(FileWriter(marker)))
    handle.close()
    assert marker.exists()


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_malicious_pickle_is_refused(tmp_path: Path, cache: Path, kit: SimpleNamespace, case: str) -> None:
    payload_type, serialize = CASES[case]
    marker = tmp_path / "pwned"
    archive = kit.write_nemo(tmp_path / "evil.nemo", weights=serialize(payload_type(marker)))
    with pytest.raises(CheckpointError, match="refusing to unpickle") as err:
        load_nemo(archive, cache_dir=cache)
    message = str(err.value)
    assert "model_weights.ckpt" in message and "weights_only=True" in message
    assert not marker.exists(), "the payload must never run"
