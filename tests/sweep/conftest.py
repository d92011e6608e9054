"""Sweeps over a tiny frozen-encoder quickstart (same specs, smaller numbers): each trial is a real
`nestbench run` process that takes seconds on 2 CPU cores."""

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

TINY = """
MiniSlurpData.n_train = 16
MiniSlurpData.n_devel = 8
MiniSlurpData.n_test = 8
MiniSlurpData.seed = 3
make_tiny_nest.d_model = 32
make_tiny_nest.n_layers = 1
make_tiny_nest.n_heads = 2
make_tiny_nest.subsampling_conv_channels = 16
SluTask.vocab_size = 80
SluTask.d_model = 32
SluTask.n_heads = 2
SluTask.ff_dim = 64
SluTask.beam_size = 1
SluTask.max_len = 24
TrainerSetup.batch_size = 8
TrainerSetup.max_epochs = 2
TrainerSetup.check_val_every_n_epoch = 1
TrainerSetup.log_every_n_steps = 1
OptimizerSetup.warmup_steps = 2
"""

SPACE = """
Experiment.notes = {'sweep': @Sweep()}
Sweep.space = [@lr/FloatRange(), @drop/Categorical()]
lr/FloatRange.binding = 'OptimizerSetup.lr'
lr/FloatRange.low = 1e-4
lr/FloatRange.high = 1e-2
lr/FloatRange.log = True
drop/Categorical.binding = 'SluTask.dropout'
drop/Categorical.choices = [0.0, 0.1]
"""


@pytest.fixture(scope="session")
def tiny_experiment(tmp_path_factory) -> Path:
    spec = tmp_path_factory.mktemp("specs") / "tiny_quickstart.gin"
    spec.write_text(f"include '{ROOT / 'experiments' / 'quickstart' / 'slurp_frozen.gin'}'\n{TINY}")
    return spec


@pytest.fixture
def sweep_spec(tiny_experiment, tmp_path):
    """``sweep_spec(body, extra=...)``: a sweep spec over the tiny experiment; ``body`` replaces the
    default space, ``extra`` adds lines after it."""

    def make(body: str = SPACE, name: str = "sweep", extra: str = "", experiment: Path | None = None) -> Path:
        path = tmp_path / f"{name}.gin"
        path.write_text(f"include '{experiment or tiny_experiment}'\n{body}\n{extra}\n")
        return path

    return make


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NESTBENCH_CACHE", str(tmp_path / "cache"))


def _pg_tool(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    return candidates[0] if candidates else None


@pytest.fixture
def postgres_url():
    """A real PostgreSQL server on 127.0.0.1 for one test, started and stopped here. initdb refuses
    root, so as root the server runs as the ``postgres`` user, from a data folder it owns."""
    initdb, pg_ctl = _pg_tool("initdb"), _pg_tool("pg_ctl")
    if not (initdb and pg_ctl):
        if os.environ.get("CI"):
            pytest.fail("initdb/pg_ctl not found; .ci/run installs Debian's postgresql package")
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    base = Path(tempfile.mkdtemp(prefix="nestbench-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run the server as")
        os.chown(base, pw.pw_uid, pw.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data, quiet = base / "data", {"check": True, "capture_output": True, "text": True}
    try:
        subprocess.run([*as_user, initdb, "-D", str(data), "-U", "nestbench", "--auth=trust", "--no-sync"], **quiet)
        subprocess.run(
            [
                *as_user,
                pg_ctl,
                "-D",
                str(data),
                "-l",
                str(base / "server.log"),
                "-w",
                "-t",
                "60",
                "start",
                "-o",
                f"-p {port} -h 127.0.0.1 -k {base} -c fsync=off",
            ],
            **quiet,
        )
        import sqlalchemy

        admin = sqlalchemy.create_engine(
            f"postgresql+psycopg2://nestbench@127.0.0.1:{port}/postgres", isolation_level="AUTOCOMMIT"
        )
        with admin.connect() as conn:
            conn.execute(sqlalchemy.text("CREATE DATABASE sweeps"))
        admin.dispose()
        yield f"postgresql://nestbench@127.0.0.1:{port}/sweeps"
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)
