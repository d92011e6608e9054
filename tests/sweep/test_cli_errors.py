"""`nestbench sweep` refuses bad input before the first trial, and leaves nothing half-created."""

import socket


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_postgres_names_host_and_port(nestbench, sweep_spec, run_env, tmp_path):
    port = _free_port()
    url = f"postgresql://nestbench:secret@127.0.0.1:{port}/nestbench"
    proc = nestbench("sweep", sweep_spec(), "--trials", "2", "--storage", url, env=run_env, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"cannot reach PostgreSQL at 127.0.0.1:{port}" in proc.stderr and "nothing was created" in proc.stderr
    assert "secret" not in proc.stderr + proc.stdout
    assert not (tmp_path / "runs" / "sweeps").exists()


def test_bad_spec_fails_before_anything_exists(nestbench, sweep_spec, run_env, tmp_path):
    spec = sweep_spec(extra="Sweep.objective = 'test/intent_acc'")
    proc = nestbench("sweep", spec, "--trials", "2", env=run_env, cwd=tmp_path)
    assert proc.returncode == 2 and "sweeps optimise a dev metric" in proc.stderr, proc.stderr[-2000:]
    assert not (tmp_path / "runs").exists()


def test_unsupported_storage_and_missing_arguments(nestbench, sweep_spec, run_env, tmp_path):
    proc = nestbench("sweep", sweep_spec(), "--trials", "2", "--storage", "mysql://x@h/db", env=run_env, cwd=tmp_path)
    assert proc.returncode == 2 and "use sqlite:///<file> or postgresql://" in proc.stderr
    proc = nestbench("sweep", sweep_spec(), env=run_env, cwd=tmp_path)
    assert proc.returncode == 2 and "--trials N" in proc.stderr
    assert not (tmp_path / "runs").exists()


def test_status_of_an_unknown_study(nestbench, run_env, tmp_path):
    proc = nestbench("sweep", "--status", "nope", env=run_env, cwd=tmp_path)
    assert proc.returncode == 2 and "no study 'nope'" in proc.stderr
