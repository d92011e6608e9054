"""Values that cannot be right are refused when the setup objects are built, and a spec's refusal
names the binding, where it was bound and what is allowed."""

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import pytest

from nestbench.data import ManifestData
from nestbench.experiment import EncoderSetup, OptimizerSetup, TrainerSetup
from nestbench.spec import SpecError, load_spec
from nestbench.validation import BindingError, describe, matches
from tasks import DiarizationTask, SluTask, SpeakerVerificationTask, VoxCelebData

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "experiments" / "quickstart" / "slurp.gin"


@pytest.mark.parametrize(
    ("value", "annotation", "ok"),
    [
        (3, float, True),
        (True, int, False),
        (1, bool, False),
        (float("nan"), float, False),
        ("eight", int | None, False),
        (None, int | None, True),
        ("frozn", Literal["frozen", "finetune"], False),
        ((0.9, 0.98), tuple[float, float], True),
        ([0.9, 0.98], tuple[float, float], True),
        ((0.9,), tuple[float, float], False),
        ("abc", Sequence[str], False),
        (["a", 1], Sequence[str], False),
        ({"a": 1}, dict[str, int], True),
    ],
)
def test_types_follow_the_annotations(value, annotation, ok):
    assert matches(value, annotation) is ok


def test_what_is_allowed_reads_as_words():
    assert describe(int | None) == "an int or None"
    assert describe(Literal["frozen", "finetune"]) == "one of 'frozen', 'finetune'"
    assert describe(tuple[float, float]) == "a tuple of 2 (a finite number, a finite number)"


@pytest.mark.parametrize(
    ("build", "binding", "allowed"),
    [
        (lambda: OptimizerSetup(lr=-1e-3), "OptimizerSetup.lr", "> 0"),
        (lambda: OptimizerSetup(warmup_steps=-5), "OptimizerSetup.warmup_steps", ">= 0"),
        (lambda: OptimizerSetup(betas=(0.9, 1.5)), "OptimizerSetup.betas", "[0, 1)"),
        (lambda: OptimizerSetup(lr=1e-4, min_lr=1e-3), "OptimizerSetup.min_lr", "must not exceed"),
        (lambda: TrainerSetup(batch_size="eight"), "TrainerSetup.batch_size", "an int or None"),
        (lambda: TrainerSetup(max_epochs=0), "TrainerSetup.max_epochs", ">= 1 or -1"),
        (lambda: TrainerSetup(max_epochs=-1), "TrainerSetup.max_epochs", "train forever"),
        (lambda: TrainerSetup(precision="bf16"), "TrainerSetup.precision", "'bf16-mixed'"),
        (lambda: TrainerSetup(devices=0), "TrainerSetup.devices", "'auto'"),
        (lambda: TrainerSetup(num_nodes=0), "TrainerSetup.num_nodes", ">= 1"),
        (lambda: EncoderSetup("x.nemo", mode="frozn"), "EncoderSetup.mode", "one of 'frozen', 'finetune'"),
        (lambda: EncoderSetup("x.nemo", layers="first"), "EncoderSetup.layers", "'all', 'last'"),
        (lambda: SpeakerVerificationTask(aam_margin=-0.1), "SpeakerVerificationTask.aam_margin", "[0, 1)"),
        (lambda: SpeakerVerificationTask(score_norm="snorm"), "SpeakerVerificationTask.score_norm", "'asnorm'"),
        (lambda: SluTask(d_model=30, n_heads=4), "SluTask.d_model", "not divisible"),
        (lambda: VoxCelebData("v1", "t", train_on="vox2"), "VoxCelebData.train_on", "'voxceleb2_dev'"),
        (lambda: ManifestData(train="", dev="d.jsonl"), "ManifestData.train", "not be empty"),
        (lambda: ManifestData(train="t.jsonl", dev="d.jsonl", tests={"x": 5}), "ManifestData.tests", "a dict"),
        (lambda: DiarizationTask(onset=1.5), "DiarizationTask.onset", "[0, 1]"),
        (lambda: DiarizationTask(max_speakers=12), "DiarizationTask.max_speakers", "[1, 8]"),
        (lambda: DiarizationTask(train_window=8.0, train_hop=9.0), "DiarizationTask.train_hop", "hop"),
        (lambda: DiarizationTask(positional=False), "DiarizationTask.sort_loss_weight", "cannot see"),
    ],
)
def test_setup_objects_refuse_impossible_values(build, binding, allowed):
    with pytest.raises(BindingError) as err:
        build()
    assert binding in err.value.bindings and allowed in str(err.value)


def test_good_values_pass():
    OptimizerSetup(lr=1e-3, encoder_lr=0.0, betas=[0.9, 0.98])
    TrainerSetup(max_epochs=-1, max_steps=100, devices="0,1", val_check_interval=200, limit_train_batches=0.5)
    EncoderSetup("x.nemo", mode="frozen", layers=[0, -1], cache_dtype="float16")


# -- where a refused value was bound ---------------------------------------------------------------
def _refusal(spec, overrides=()) -> str:
    with pytest.raises(SpecError) as err:
        load_spec(spec, overrides)
    return str(err.value)


def test_an_override_is_named_by_its_number():
    msg = _refusal(QUICKSTART, ["Experiment.seed = 1", "OptimizerSetup.lr = -1e-3"])
    assert msg.startswith("--gin override #2 ('OptimizerSetup.lr = -1e-3'): OptimizerSetup.lr = -0.001: must be > 0")
    assert "In call to configurable" not in msg


def test_a_spec_line_is_named_and_the_last_binding_wins(tmp_path):
    base = tmp_path / "base.gin"
    base.write_text(f"include '{QUICKSTART}'\nTrainerSetup.max_epochs = 0\n")
    spec = tmp_path / "spec.gin"
    spec.write_text(f"include '{base}'\n# TrainerSetup.max_epochs = 2\nOptimizerSetup.lr = 1e-3\n")
    assert "base.gin:2: TrainerSetup.max_epochs = 0: must be >= 1 or -1" in _refusal(spec)
    spec.write_text(f"include '{base}'\nTrainerSetup.max_epochs = -3\n")
    assert "spec.gin:2: TrainerSetup.max_epochs = -3" in _refusal(spec)


def test_a_value_bound_through_a_macro_names_the_macro(tmp_path):
    spec = tmp_path / "spec.gin"
    spec.write_text(f"include '{QUICKSTART}'\nLR = -1.0\nOptimizerSetup.lr = %LR\n")
    msg = _refusal(spec)
    assert msg.startswith(f"{spec}:2: OptimizerSetup.lr = -1.0: must be > 0")
    assert f"OptimizerSetup.lr = %LR at {spec}:3" in msg


def test_a_cross_field_refusal_names_every_binding_involved(tmp_path):
    spec = tmp_path / "spec.gin"
    spec.write_text(f"include '{QUICKSTART}'\nTrainerSetup.batch_size = None\n")
    msg = _refusal(spec, ["TrainerSetup.max_batch_duration = None"])
    assert msg.startswith(f"{spec}:2, --gin override #1")
    assert "batch_size and max_batch_duration are both None" in msg


def test_nothing_is_created_before_the_check(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _refusal(QUICKSTART, ["TrainerSetup.batch_size = 'eight'"])
    assert list(tmp_path.iterdir()) == []
