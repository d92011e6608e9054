"""Hostile archives are refused before anything is written, inside or outside the cache."""

from __future__ import annotations

import tarfile
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest

from nestbench.checkpoint import CheckpointError, load_nemo, safe_extract
from nestbench.checkpoint.safe_tar import _publish

AddBad = Callable[[tarfile.TarFile], None]


def legit_then(kit: SimpleNamespace, path: Path, add_bad: AddBad) -> Path:
    """A valid `.nemo` whose hostile member comes last, so only validate-all-first can stop it."""
    with tarfile.open(path, "w") as tar:
        kit.add_member(tar, "./model_config.yaml", kit.config_bytes())
        kit.add_member(tar, "./model_weights.ckpt", kit.weights_bytes(kit.make_state_dict()))
        add_bad(tar)
    return path


# member name -> (tar member type, link target, words the error must contain). The cache is
# <tmp>/cache and the extraction target <tmp>/cache/nemo/<sha>, so three `..` reach <tmp> itself.
HOSTILE = {
    "../../../evil.txt": (tarfile.REGTYPE, "", "'..'"),
    "./sub/../../../../evil.txt": (tarfile.REGTYPE, "", "'..'"),
    "./link": (tarfile.SYMTYPE, "/etc/passwd", "symlink"),
    "./hard": (tarfile.LNKTYPE, "/etc/passwd", "hardlink"),
    "./pipe": (tarfile.FIFOTYPE, "", "not a regular file"),
    "./null": (tarfile.CHRTYPE, "", "not a regular file"),
}


@pytest.mark.parametrize("member", HOSTILE, ids=["traversal", "nested-traversal", "symlink", "hardlink", "fifo", "chr"])
def test_hostile_member_is_refused(tmp_path: Path, cache: Path, kit: SimpleNamespace, member: str) -> None:
    kind, linkname, why = HOSTILE[member]
    add = lambda tar: kit.add_member(tar, member, b"owned", kind=kind, linkname=linkname)
    archive = legit_then(kit, tmp_path / "evil.nemo", add)
    before = kit.snapshot(tmp_path)
    with pytest.raises(CheckpointError) as err:
        load_nemo(archive, cache_dir=cache)
    message = str(err.value)
    assert str(archive) in message and repr(member) in message and why in message
    assert kit.snapshot(tmp_path) == before, "nothing may be written anywhere, cache included"
    assert not (tmp_path / "evil.txt").exists()


def test_absolute_member_is_refused(tmp_path: Path, cache: Path, kit: SimpleNamespace) -> None:
    target = tmp_path / "outside" / "evil.txt"
    archive = legit_then(kit, tmp_path / "evil.nemo", lambda tar: kit.add_member(tar, str(target), b"owned"))
    before = kit.snapshot(tmp_path)
    with pytest.raises(CheckpointError, match="absolute path") as err:
        load_nemo(archive, cache_dir=cache)
    assert repr(str(target)) in str(err.value)
    assert not target.exists() and not target.parent.exists()
    assert kit.snapshot(tmp_path) == before


def test_symlink_then_write_through_it_is_refused(tmp_path: Path, kit: SimpleNamespace) -> None:
    """The classic two-step escape: a symlink to a directory, then a file written 'inside' it."""
    outside = tmp_path / "outside"
    outside.mkdir()

    def add(tar: tarfile.TarFile) -> None:
        kit.add_member(tar, "escape", kind=tarfile.SYMTYPE, linkname=str(outside))
        kit.add_member(tar, "escape/evil.txt", b"owned")

    archive = legit_then(kit, tmp_path / "evil.nemo", add)
    with pytest.raises(CheckpointError, match="'escape'.*symlink"):
        safe_extract(archive, tmp_path / "dest")
    assert list(outside.iterdir()) == []
    assert not (tmp_path / "dest").exists()


def test_size_budget(tmp_path: Path, cache: Path, kit: SimpleNamespace) -> None:
    archive = legit_then(kit, tmp_path / "a.nemo", lambda tar: kit.add_member(tar, "./big.bin", b"x" * 4096))
    budget = len(kit.config_bytes()) + len(kit.weights_bytes(kit.make_state_dict())) + 100
    with pytest.raises(CheckpointError, match="size budget") as err:
        safe_extract(archive, cache / "out", max_total_bytes=budget)
    message = str(err.value)
    assert str(archive) in message and "'./big.bin'" in message
    assert f"{budget}-byte uncompressed size budget" in message
    assert not cache.exists()


def test_size_budget_counts_unrequested_members(tmp_path: Path, kit: SimpleNamespace) -> None:
    archive = legit_then(kit, tmp_path / "a.nemo", lambda tar: kit.add_member(tar, "./big.bin", b"x" * 100_000))
    with pytest.raises(CheckpointError, match=r"'\./big\.bin'.*size budget"):
        safe_extract(archive, tmp_path / "dest", members=["model_config.yaml"], max_total_bytes=50_000)
    assert not (tmp_path / "dest").exists()


def test_member_count_budget(tmp_path: Path, kit: SimpleNamespace) -> None:
    archive = legit_then(kit, tmp_path / "a.nemo", lambda tar: kit.add_member(tar, "./third"))
    with pytest.raises(CheckpointError, match="more than 2 members"):
        safe_extract(archive, tmp_path / "dest", max_members=2)
    assert not (tmp_path / "dest").exists()


def test_duplicate_member_is_refused(tmp_path: Path, kit: SimpleNamespace) -> None:
    swap = lambda tar: kit.add_member(tar, "model_config.yaml", b"swapped: true")
    archive = legit_then(kit, tmp_path / "a.nemo", swap)
    with pytest.raises(CheckpointError, match="'model_config.yaml'.*appears twice"):
        safe_extract(archive, tmp_path / "dest")
    assert not (tmp_path / "dest").exists()


def test_safe_extract_writes_all_members_atomically(tmp_path: Path, kit: SimpleNamespace) -> None:
    archive = tmp_path / "a.tar"
    with tarfile.open(archive, "w") as tar:
        kit.add_member(tar, ".", kind=tarfile.DIRTYPE)
        kit.add_member(tar, "./tok", kind=tarfile.DIRTYPE)
        kit.add_member(tar, "./tok/vocab.txt", b"a\nb\n")
        kit.add_member(tar, "./model_config.yaml", b"x: 1\n")
    dest = tmp_path / "dest"
    safe_extract(archive, dest)
    assert (dest / "tok" / "vocab.txt").read_bytes() == b"a\nb\n"
    assert (dest / "model_config.yaml").read_bytes() == b"x: 1\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tar", "dest"], "no staging leftovers"
    with pytest.raises(FileExistsError):
        safe_extract(archive, dest)


def test_requested_member_missing(tmp_path: Path, kit: SimpleNamespace) -> None:
    archive = tmp_path / "a.tar"
    with tarfile.open(archive, "w") as tar:
        kit.add_member(tar, "./model_config.yaml", b"x: 1\n")
    with pytest.raises(CheckpointError, match="model_weights.ckpt"):
        safe_extract(archive, tmp_path / "dest", members=["model_weights.ckpt"])
    assert not (tmp_path / "dest").exists()


def test_not_a_tar(tmp_path: Path, cache: Path) -> None:
    bogus = tmp_path / "bogus.nemo"
    bogus.write_bytes(b"definitely not a tar archive" * 20)
    with pytest.raises(CheckpointError, match="bogus.nemo"):
        load_nemo(bogus, cache_dir=cache)
    assert not cache.exists()


def test_losing_the_publish_race_keeps_the_winner(tmp_path: Path) -> None:
    winner, staging = tmp_path / "dest", tmp_path / ".dest.partial-x"
    for folder, text in ((winner, "winner"), (staging, "loser")):
        folder.mkdir()
        (folder / "f").write_text(text)
    _publish(staging, winner)
    assert (winner / "f").read_text() == "winner"
