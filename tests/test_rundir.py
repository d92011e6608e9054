from nestbench.rundir import find_resumable, new_run_dir


def test_existing_run_folder_is_never_reused(tmp_path):
    first = new_run_dir(tmp_path, "exp")
    (first / "marker").write_text("keep me")
    second = new_run_dir(tmp_path, "exp")  # same second: gets a suffix, never the same folder
    assert second != first and second.parent == first.parent
    assert (first / "marker").read_text() == "keep me"


def test_find_resumable_picks_unfinished(tmp_path):
    done = new_run_dir(tmp_path, "exp")
    (done / "config.gin").write_text("x")
    (done / "metrics.json").write_text("{}")
    assert find_resumable(tmp_path, "exp") is None
    open_run = new_run_dir(tmp_path, "exp")
    (open_run / "config.gin").write_text("x")
    assert find_resumable(tmp_path, "exp") == open_run
