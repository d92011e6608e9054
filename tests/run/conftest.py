"""A tiny version of the quickstart (same specs, smaller numbers) shared by the run tests."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

TINY_OVERRIDES = """
MiniSlurpData.n_train = 48
MiniSlurpData.n_devel = 12
MiniSlurpData.n_test = 12
MiniSlurpData.seed = 3
make_tiny_nest.d_model = 32
make_tiny_nest.n_layers = 1
make_tiny_nest.n_heads = 2
make_tiny_nest.subsampling_conv_channels = 16
SluTask.vocab_size = 96
SluTask.d_model = 32
SluTask.n_heads = 2
SluTask.ff_dim = 64
SluTask.beam_size = 2
TrainerSetup.batch_size = 8
TrainerSetup.max_epochs = 16
OptimizerSetup.lr = 3e-3
OptimizerSetup.encoder_lr = 3e-3
TrainerSetup.check_val_every_n_epoch = 1
OptimizerSetup.warmup_steps = 5
TrainerSetup.log_every_n_steps = 1
"""


@pytest.fixture(scope="session")
def tiny_spec(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("specs")
    spec = folder / "tiny_quickstart.gin"
    spec.write_text(f"include '{ROOT / 'experiments' / 'quickstart' / 'slurp.gin'}'\n{TINY_OVERRIDES}")
    return spec
