"""Hub ids resolve through local placements and the HF cache; offline failures say what to download."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from nestbench.checkpoint import CheckpointError, load_nemo, resolve_checkpoint

HUB_ID = "nvidia/ssl_en_nest_large_v1.0"
FILENAME = "ssl_en_nest_large_v1.0.nemo"


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.mark.usefixtures("offline")
def test_offline_error_says_what_to_download_and_where(cache: Path, kit: SimpleNamespace, nemo: Path) -> None:
    placement = cache / "hub" / "nvidia" / "ssl_en_nest_large_v1.0" / FILENAME
    with pytest.raises(CheckpointError) as err:
        resolve_checkpoint(HUB_ID, cache_dir=cache)
    message = str(err.value)
    assert FILENAME in message
    assert f"https://huggingface.co/{HUB_ID}/resolve/main/{FILENAME}" in message
    assert str(placement) in message
    assert "--model" in message
    assert not placement.exists()

    placement.parent.mkdir(parents=True)
    shutil.copyfile(nemo, placement)
    assert resolve_checkpoint(HUB_ID, cache_dir=cache) == placement
    ckpt = load_nemo(HUB_ID, cache_dir=cache)
    assert ckpt.source == HUB_ID and ckpt.path == placement and ckpt.config == kit.CONFIG


@pytest.mark.usefixtures("offline")
def test_hf_cache_is_found_offline(cache: Path, nemo: Path) -> None:
    """A file already in the Hugging Face cache layout (as `hf_hub_download` leaves it) is used."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / "huggingface" / f"models--{HUB_ID.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    shutil.copyfile(nemo, snapshot / FILENAME)
    assert resolve_checkpoint(HUB_ID, cache_dir=cache) == snapshot / FILENAME


@pytest.mark.parametrize(
    "source",
    ["no such thing", "missing.nemo", "models/missing.nemo", "a/b/c", "nvidia/", ""],
)
def test_bad_source_string(cache: Path, source: str) -> None:
    with pytest.raises(CheckpointError, match="not a file, folder or hub id") as err:
        resolve_checkpoint(source, cache_dir=cache)
    assert repr(source) in str(err.value)
    assert not cache.exists()


def test_missing_path_object_is_not_a_hub_id(cache: Path) -> None:
    with pytest.raises(CheckpointError, match="not a file, folder or hub id"):
        resolve_checkpoint(Path("nvidia/ssl_en_nest_large_v1.0"), cache_dir=cache)
