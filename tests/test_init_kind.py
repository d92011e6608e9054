"""``init_kind``: how include/exclude filters start the encoder, recorded with every result, and the
leaderboard label that keeps a random-init run out of its checkpoint's row."""

from pathlib import Path

from nestbench.experiment import EncoderSetup
from nestbench.leaderboard.aggregate import encoder_label
from nestbench.upstream import init_kind

NEMO = Path(__file__).resolve().parent / "fixtures" / "parity" / "tiny" / "nest_tiny.nemo"


def test_init_kind_names_what_the_filters_load():
    setup = lambda **kw: EncoderSetup(checkpoint=str(NEMO), **kw)  # noqa: E731
    assert init_kind(setup()) == "checkpoint"
    assert init_kind(setup(init_include=("encoder", "preprocessor"))) == "checkpoint"  # NeMo's fine-tuning
    assert init_kind(setup(init_exclude=("encoder.",))) == "random"  # only the (weightless) front end
    assert init_kind(setup(init_exclude=("layers.1.",))) == "partial"


def test_the_board_labels_a_random_init_apart_from_its_checkpoint():
    enc = {"checkpoint": "experiments/quickstart/checkpoints/nest_mini_ssl.nemo"}
    assert encoder_label(enc) == "nest_mini_ssl"  # records made before `init` was recorded
    assert encoder_label({**enc, "init": "checkpoint"}) == "nest_mini_ssl"
    assert encoder_label({**enc, "init": "random"}) == "nest_mini_ssl (random init)"
    assert encoder_label({**enc, "init": "partial"}) == "nest_mini_ssl (partial init)"
