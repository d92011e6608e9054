"""Loading real `.nemo` archives and unpacked folders: round trip, provenance hash, cache reuse."""

from __future__ import annotations

import hashlib
import logging
import shutil
import tarfile
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from nestbench.checkpoint import CheckpointError, default_cache_dir, load_nemo, split_state_dict


def assert_same_state(actual: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    assert actual.keys() == expected.keys()
    for key, tensor in expected.items():
        assert torch.equal(actual[key], tensor), key
        assert actual[key].device.type == "cpu"


@pytest.mark.parametrize(
    ("prefix", "mode"), [("./", "w"), ("", "w"), ("./", "w:gz")], ids=["dot-prefix", "bare", "gzip"]
)
def test_archive_round_trip(tmp_path: Path, cache: Path, kit: SimpleNamespace, prefix: str, mode: str) -> None:
    archive = kit.write_nemo(tmp_path / "m.nemo", prefix=prefix, mode=mode)
    ckpt = load_nemo(archive, cache_dir=cache)
    assert ckpt.config == kit.CONFIG
    assert_same_state(ckpt.state_dict, kit.make_state_dict())
    assert ckpt.sha256 == hashlib.sha256(archive.read_bytes()).hexdigest()
    assert ckpt.path == archive
    assert ckpt.source == str(archive)
    assert (cache / "nemo" / ckpt.sha256 / "model_weights.ckpt").is_file()


def test_unpacked_folder(tmp_path: Path, cache: Path, kit: SimpleNamespace, nemo: Path) -> None:
    folder = tmp_path / "unpacked"
    with tarfile.open(nemo) as tar:
        tar.extractall(folder, filter="data")
    ckpt = load_nemo(str(folder), cache_dir=cache)
    assert ckpt.config == kit.CONFIG
    assert_same_state(ckpt.state_dict, kit.make_state_dict())
    assert ckpt.sha256 == hashlib.sha256((folder / "model_weights.ckpt").read_bytes()).hexdigest()
    assert ckpt.path == folder
    assert not cache.exists(), "a folder needs no extraction, so the cache stays untouched"


def test_folder_without_weights_is_refused(tmp_path: Path, cache: Path, kit: SimpleNamespace) -> None:
    folder = tmp_path / "half"
    folder.mkdir()
    (folder / "model_config.yaml").write_bytes(kit.config_bytes())
    with pytest.raises(CheckpointError, match="model_weights.ckpt") as err:
        load_nemo(folder, cache_dir=cache)
    assert str(folder) in str(err.value)


def test_cache_folder_is_reused(cache: Path, nemo: Path) -> None:
    first = load_nemo(nemo, cache_dir=cache)
    extracted = cache / "nemo" / first.sha256
    stamps = {p.name: p.stat().st_mtime_ns for p in extracted.iterdir()}
    inode = extracted.stat().st_ino

    second = load_nemo(nemo, cache_dir=cache)
    assert second.sha256 == first.sha256
    assert {p.name: p.stat().st_mtime_ns for p in extracted.iterdir()} == stamps
    assert extracted.stat().st_ino == inode
    assert [p.name for p in (cache / "nemo").iterdir()] == [first.sha256], "no staging leftovers"


def test_same_archive_elsewhere_shares_the_cache(tmp_path: Path, cache: Path, nemo: Path) -> None:
    copy = tmp_path / "copy.nemo"
    shutil.copyfile(nemo, copy)
    assert load_nemo(copy, cache_dir=cache).sha256 == load_nemo(nemo, cache_dir=cache).sha256
    assert len(list((cache / "nemo").iterdir())) == 1


def test_incomplete_cache_folder_is_replaced(cache: Path, kit: SimpleNamespace, nemo: Path) -> None:
    sha = hashlib.sha256(nemo.read_bytes()).hexdigest()
    broken = cache / "nemo" / sha
    broken.mkdir(parents=True)
    (broken / "model_config.yaml").write_text("truncated: [")
    ckpt = load_nemo(nemo, cache_dir=cache)
    assert ckpt.config == kit.CONFIG
    assert sorted(p.name for p in (cache / "nemo").iterdir()) == [sha]


def test_only_config_and_weights_are_extracted(tmp_path: Path, cache: Path, kit: SimpleNamespace) -> None:
    archive = kit.write_nemo(tmp_path / "m.nemo", extra={"tokenizer.model": b"spm", "vocab.txt": b"a\nb\n"})
    ckpt = load_nemo(archive, cache_dir=cache)
    assert sorted(p.name for p in (cache / "nemo" / ckpt.sha256).iterdir()) == [
        "model_config.yaml",
        "model_weights.ckpt",
    ]


def test_config_nested_under_model(tmp_path: Path, cache: Path, kit: SimpleNamespace) -> None:
    archive = kit.write_nemo(tmp_path / "m.nemo", config={"model": kit.CONFIG, "trainer": {"devices": 1}})
    assert load_nemo(archive, cache_dir=cache).config == kit.CONFIG


def test_yaml_tags_are_not_constructed(tmp_path: Path, cache: Path, kit: SimpleNamespace) -> None:
    archive = tmp_path / "m.nemo"
    with tarfile.open(archive, "w") as tar:
        kit.add_member(tar, "model_config.yaml", b"encoder: !!python/object/apply:os.getcwd []\n")
        kit.add_member(tar, "model_weights.ckpt", b"unused")
    with pytest.raises(CheckpointError, match="cannot read config") as err:
        load_nemo(archive, cache_dir=cache)
    assert "model_config.yaml" in str(err.value)


def test_missing_weights_member(tmp_path: Path, cache: Path, kit: SimpleNamespace) -> None:
    archive = tmp_path / "m.nemo"
    with tarfile.open(archive, "w") as tar:
        kit.add_member(tar, "./model_config.yaml", kit.config_bytes())
    with pytest.raises(CheckpointError, match="model_weights.ckpt") as err:
        load_nemo(archive, cache_dir=cache)
    assert str(archive) in str(err.value)


def test_weights_that_are_not_a_state_dict(tmp_path: Path, cache: Path, kit: SimpleNamespace) -> None:
    archive = kit.write_nemo(tmp_path / "m.nemo", weights=kit.weights_bytes({"encoder.w": 3}))
    with pytest.raises(CheckpointError, match="flat str -> Tensor") as err:
        load_nemo(archive, cache_dir=cache)
    assert "'encoder.w'" in str(err.value)


def test_corrupt_weights(tmp_path: Path, cache: Path, kit: SimpleNamespace) -> None:
    archive = kit.write_nemo(tmp_path / "m.nemo", weights=b"PK\x03\x04 this is not a zip")
    with pytest.raises(CheckpointError, match="cannot read weights") as err:
        load_nemo(archive, cache_dir=cache)
    assert "model_weights.ckpt" in str(err.value)


def test_split_state_dict_counts_ignored_keys(caplog: pytest.LogCaptureFixture, kit: SimpleNamespace) -> None:
    state = kit.make_state_dict()
    with caplog.at_level(logging.INFO, logger="nestbench.checkpoint"):
        groups, ignored = split_state_dict(state)
    assert set(groups) == {"preprocessor", "encoder"}
    assert set(groups["preprocessor"]) == {"featurizer.window", "featurizer.fb"}
    assert set(groups["encoder"]) == {"pre_encode.out.weight", "layers.0.norm_out.bias"}
    assert groups["encoder"]["pre_encode.out.weight"] is state["encoder.pre_encode.out.weight"]
    assert ignored == {"quantizer": 2, "decoder": 2}
    records = [r for r in caplog.records if r.name == "nestbench.checkpoint"]
    assert len(records) == 1 and "ignoring 4 checkpoint keys" in records[0].getMessage()


def test_split_state_dict_prefixes_are_exact() -> None:
    state = {"encoder_extra.w": torch.zeros(1), "encoder.w": torch.ones(1)}
    groups, ignored = split_state_dict(state, prefixes=("encoder.",))
    assert list(groups) == ["encoder"] and list(groups["encoder"]) == ["w"]
    assert ignored == {"encoder_extra": 1}


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NESTBENCH_CACHE", str(tmp_path / "nb"))
    assert default_cache_dir() == tmp_path / "nb"
    monkeypatch.delenv("NESTBENCH_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / ".cache" / "nestbench"


def test_env_cache_is_used_without_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, nemo: Path) -> None:
    monkeypatch.setenv("NESTBENCH_CACHE", str(tmp_path / "env-cache"))
    ckpt = load_nemo(nemo)
    assert (tmp_path / "env-cache" / "nemo" / ckpt.sha256 / "model_config.yaml").is_file()


def test_writers_of_the_same_archive_at_once_all_succeed(tmp_path: Path, cache: Path, kit: SimpleNamespace) -> None:
    """Sweep workers build the same tiny encoder at the same moment: each publishes a whole file."""
    from concurrent.futures import ThreadPoolExecutor

    from nestbench.checkpoint.nemo_file import write_nemo

    state = kit.make_state_dict()
    target = tmp_path / "shared" / "model.nemo"
    with ThreadPoolExecutor(8) as pool:
        written = list(pool.map(lambda _: write_nemo(target, dict(kit.CONFIG), state), range(16)))
    assert written == [target] * 16
    assert sorted(p.name for p in target.parent.iterdir()) == ["model.nemo"]  # no temporary left behind
    assert_same_state(load_nemo(target, cache_dir=cache).state_dict, state)
