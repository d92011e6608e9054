"""Published files: whole or absent, and readable by whoever an ordinary write would let read them."""

import os
import stat

import pytest

from nestbench.fileio import atomic_write, write_text_atomic


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_published_files_get_the_mode_of_an_ordinary_write(tmp_path, umask_022):
    write_text_atomic(tmp_path / "meta.json", "{}\n")
    with atomic_write(tmp_path / "a.bin") as f:
        f.write(b"x")
    assert _mode(tmp_path / "meta.json") == _mode(tmp_path / "a.bin") == 0o644
    os.umask(0o002)  # a group-shared project folder
    write_text_atomic(tmp_path / "shared.txt", "x")
    assert _mode(tmp_path / "shared.txt") == 0o664
    assert not list(tmp_path.glob(".*.tmp"))


def test_explicit_permissions_still_win(tmp_path, umask_022):
    with atomic_write(tmp_path / "x.nemo", permissions=0o600) as f:
        f.write(b"x")
    assert _mode(tmp_path / "x.nemo") == 0o600
