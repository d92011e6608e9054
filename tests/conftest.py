"""Fixtures for tests that drive the real CLI in subprocesses (gin state, Lightning flags and sweeps
are process-global by design)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture
def run_env(tmp_path) -> dict:
    """An environment that keeps a test's runs, caches and W&B offline and inside ``tmp_path``."""
    env = dict(os.environ)
    env.update(
        NESTBENCH_CACHE=str(tmp_path / "cache"),
        NESTBENCH_RUNS=str(tmp_path / "runs"),
        HF_HUB_OFFLINE="1",
        WANDB_MODE="offline",
        WANDB_SILENT="true",
        PYTHONUNBUFFERED="1",
        OMP_NUM_THREADS="2",
    )
    for inherited in ("WANDB_API_KEY", "NESTBENCH_TRIAL", "NESTBENCH_RUN_DIR"):
        env.pop(inherited, None)
    return env


@pytest.fixture
def nestbench_cmd():
    """``nestbench_cmd(*args)``: the argv of the real CLI, for tests that start (and kill) it themselves."""
    return lambda *args: [sys.executable, "-m", "nestbench.cli", *map(str, args)]


@pytest.fixture
def nestbench(nestbench_cmd):
    """``nestbench(*args, env=..., cwd=...)``: run the real CLI to the end."""

    def run(*args, env: dict, cwd: Path, **kw) -> subprocess.CompletedProcess:
        return subprocess.run(nestbench_cmd(*args), env=env, cwd=cwd, capture_output=True, text=True, **kw)

    return run


@pytest.fixture
def tiny_text_run() -> str:
    """Bindings that shrink the ASR/AST quickstarts to a seconds-long real run (corpus, encoder, one epoch)."""
    return """
SpeechTextMiniData.n_train = 48
SpeechTextMiniData.n_dev = 6
SpeechTextMiniData.n_test = 6
make_tiny_nest.d_model = 32
make_tiny_nest.n_layers = 1
make_tiny_nest.n_heads = 2
make_tiny_nest.subsampling_conv_channels = 8
TrainerSetup.batch_size = 8
TrainerSetup.max_epochs = 1
TrainerSetup.check_val_every_n_epoch = 1
"""
