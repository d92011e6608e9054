"""Builders for real `.nemo` archives (tar + torch.save + YAML), handed to tests as the `kit` fixture.

The project runs pytest with `--import-mode=importlib`, where test modules cannot import helper
modules beside them; a fixture works in every import mode.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml

CONFIG = {
    "sample_rate": 16000,
    "preprocessor": {"_target_": "AudioToMelSpectrogramPreprocessor", "features": 80},
    "encoder": {"_target_": "ConformerEncoder", "d_model": 8, "n_layers": 1},
}


def make_state_dict() -> dict[str, torch.Tensor]:
    """A small NEST-shaped state dict: kept modules plus SSL-only ones that loading must ignore."""
    gen = torch.Generator().manual_seed(0)
    return {
        "preprocessor.featurizer.window": torch.hann_window(16),
        "preprocessor.featurizer.fb": torch.rand(1, 80, 9, generator=gen),
        "encoder.pre_encode.out.weight": torch.rand(8, 8, generator=gen),
        "encoder.layers.0.norm_out.bias": torch.zeros(8),
        "quantizer.codebooks": torch.rand(2, 4, generator=gen),
        "quantizer.proj": torch.rand(4, 8, generator=gen),
        "decoder.proj.weight": torch.rand(8, 8, generator=gen),
        "decoder.proj.bias": torch.zeros(8),
    }


def weights_bytes(state: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def config_bytes(config: dict = CONFIG) -> bytes:
    return yaml.safe_dump(config).encode()


def add_member(
    tar: tarfile.TarFile, name: str, data: bytes = b"", *, kind: bytes = tarfile.REGTYPE, linkname: str = ""
) -> None:
    """Add any member type; only regular files carry `data`."""
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    if kind == tarfile.REGTYPE:
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    else:
        tar.addfile(info)


def write_nemo(
    path: Path,
    *,
    prefix: str = "./",
    mode: str = "w",
    config: dict = CONFIG,
    weights: bytes | None = None,
    extra: dict[str, bytes] | None = None,
) -> Path:
    """Write a `.nemo` archive the way NeMo does: a `./` directory entry, then config and weights."""
    with tarfile.open(path, mode) as tar:
        if prefix:
            add_member(tar, ".", kind=tarfile.DIRTYPE)
        add_member(tar, f"{prefix}model_config.yaml", config_bytes(config))
        default_weights = weights_bytes(make_state_dict())
        add_member(tar, f"{prefix}model_weights.ckpt", default_weights if weights is None else weights)
        for name, data in (extra or {}).items():
            add_member(tar, f"{prefix}{name}", data)
    return path


def snapshot(root: Path) -> set[str]:
    """Every path under `root`, to prove an operation wrote nothing."""
    return {str(p.relative_to(root)) for p in root.rglob("*")}


KIT = SimpleNamespace(
    CONFIG=CONFIG,
    make_state_dict=make_state_dict,
    weights_bytes=weights_bytes,
    config_bytes=config_bytes,
    add_member=add_member,
    write_nemo=write_nemo,
    snapshot=snapshot,
)


@pytest.fixture
def kit() -> SimpleNamespace:
    return KIT


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    """A private cache dir, so no test touches ~/.cache or $NESTBENCH_CACHE."""
    return tmp_path / "cache"


@pytest.fixture
def nemo(tmp_path: Path) -> Path:
    return write_nemo(tmp_path / "model.nemo")
