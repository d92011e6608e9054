"""git_state on a throw-away repository: what marks a commit dirty."""

import subprocess
from pathlib import Path

import pytest

from nestbench.provenance import git_state


@pytest.fixture
def repo(tmp_path):
    """A repository with one committed file and a .gitignore for build outputs."""

    def git(*args):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path, check=True)

    git("init", "-q")
    (tmp_path / "model.py").write_text("x = 1\n")
    (tmp_path / ".gitignore").write_text("build/\n")
    git("add", "model.py", ".gitignore")
    git("commit", "-q", "-m", "init")
    return tmp_path


def test_clean_checkout_is_not_dirty(repo):
    state = git_state(repo)
    assert len(state["commit"]) == 40
    assert state["dirty"] is False and state["untracked"] == 0


def test_untracked_source_file_marks_dirty(repo):
    (repo / "pkg").mkdir()
    (repo / "pkg" / "new_head.py").write_text("y = 2\n")
    (repo / "notes.txt").write_text("todo\n")
    state = git_state(repo)
    assert state["dirty"] is True and state["untracked"] == 2


def test_ignored_files_do_not_mark_dirty(repo):
    (repo / "build").mkdir()
    (repo / "build" / "out.bin").write_bytes(b"\0")
    state = git_state(repo)
    assert state["dirty"] is False and state["untracked"] == 0


def test_edit_marks_dirty_without_untracked(repo):
    (repo / "model.py").write_text("x = 2\n")
    state = git_state(repo)
    assert state["dirty"] is True and state["untracked"] == 0


def test_outside_a_repository(tmp_path):
    assert git_state(tmp_path / "missing") == {"commit": None, "dirty": None, "untracked": None}


def test_portable_path_is_relative_to_its_root_also_when_both_are_relative(tmp_path, monkeypatch):
    from nestbench.provenance import portable_path

    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "exp" / "id").mkdir(parents=True)
    assert portable_path(Path("runs/exp/id"), root=Path("runs")) == "exp/id"  # `--runs-dir runs`
    assert portable_path(tmp_path / "runs" / "exp" / "id", root=tmp_path / "runs") == "exp/id"
    assert portable_path("experiments/x.gin") == "experiments/x.gin"  # no root: relative stays as given
