"""Every shipped spec parses; typos fail before any work with file:line and a hint."""

import fnmatch
from pathlib import Path

import pytest

from nestbench.encoder.tiny import tiny_nest_args
from nestbench.experiment import Experiment
from nestbench.pretrain.setup import PretrainExperiment
from nestbench.spec import SpecError, load_spec, operative_bindings

ROOT = Path(__file__).resolve().parents[2]
SPECS = sorted(p for p in (ROOT / "experiments").rglob("*.gin") if "common" not in p.parts)


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NESTBENCH_CACHE", str(tmp_path / "cache"))


PRETRAIN_SPECS = [ROOT / "experiments" / "pretrain_nest.gin", ROOT / "experiments" / "quickstart" / "pretrain.gin"]


@pytest.mark.parametrize("spec", [s for s in SPECS if s not in PRETRAIN_SPECS], ids=lambda p: str(p.relative_to(ROOT)))
def test_every_shipped_spec_parses(spec):
    loaded = load_spec(spec)
    assert isinstance(loaded.experiment, Experiment)
    assert loaded.experiment.task.metrics
    assert "Experiment.name" in loaded.operative_config


@pytest.mark.parametrize("spec", PRETRAIN_SPECS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_shipped_pretraining_spec_parses(spec):
    bound = ["TRAIN_MANIFESTS = ['t.jsonl']", "DEV_MANIFESTS = ['d.jsonl']", "NOISE_MANIFEST = 'n.jsonl'"]
    loaded = load_spec(spec, bound if "quickstart" not in spec.parts else (), root="PretrainExperiment")
    assert isinstance(loaded.experiment, PretrainExperiment)
    assert "PretrainExperiment.name" in loaded.operative_config
    with pytest.raises(SpecError, match="nestbench pretrain"):  # given to `nestbench run`
        load_spec(spec, bound)


# What experiments/quickstart/slurp.gin's header says it rebinds in experiments/slurp.gin: the data, the
# encoder, which run and board, and the sizes that make it finish in minutes on 2 CPU cores.
# A '*' stands for every parameter of a configurable only one of the two specs uses.
QUICKSTART_REBINDS = {
    # data: the synthesised mini corpus instead of SLURP (SLURP_DIR and SlurpData drop out of the config)
    "Experiment.data",
    "SLURP_DIR",
    "SlurpData.*",
    "MiniSlurpData.*",
    # encoder: a small random FastConformer, without SpecAugment (nothing to regularise yet)
    "ENCODER",
    "ENCODER/make_tiny_nest.*",
    "EncoderSetup.freq_masks",
    "EncoderSetup.time_masks",
    # which run and board
    "Experiment.name",
    "Experiment.board",
    # sizes, optimiser and trainer settings for a run of minutes on CPU
    *(f"SluTask.{p}" for p in ("vocab_size", "d_model", "n_layers", "n_heads", "ff_dim", "dropout", "beam_size")),
    *(f"OptimizerSetup.{p}" for p in ("lr", "encoder_lr", "weight_decay", "warmup_steps", "min_lr")),
    *(
        f"TrainerSetup.{p}"
        for p in (
            "batch_size",
            "max_epochs",
            "check_val_every_n_epoch",
            "gradient_clip_val",
            "num_workers",
            "cpu_threads",
        )
    ),
}


def _unexpected_quickstart_rebinds(overrides=()) -> set[str]:
    """Operative bindings the quickstart changes in the full spec beyond QUICKSTART_REBINDS."""
    full = operative_bindings(load_spec(ROOT / "experiments" / "slurp.gin").operative_config)
    quick = operative_bindings(load_spec(ROOT / "experiments" / "quickstart" / "slurp.gin", overrides).operative_config)
    changed = {k for k in full.keys() | quick.keys() if full.get(k) != quick.get(k)}
    return {k for k in changed if not any(fnmatch.fnmatchcase(k, allowed) for allowed in QUICKSTART_REBINDS)}


def test_quickstart_rebinds_only_data_encoder_and_sizes():
    assert _unexpected_quickstart_rebinds() == set()
    assert _unexpected_quickstart_rebinds(["TrainerSetup.precision = 'bf16-mixed'"]) == {"TrainerSetup.precision"}
    full = load_spec(ROOT / "experiments" / "slurp.gin").experiment
    quick = load_spec(ROOT / "experiments" / "quickstart" / "slurp.gin").experiment
    assert full.encoder.checkpoint == "nvidia/ssl_en_nest_large_v1.0"
    assert tiny_nest_args(quick.encoder.checkpoint)["d_model"] == 96
    assert type(quick.data).__name__ == "MiniSlurpData" and type(full.data).__name__ == "SlurpData"
    assert quick.board == "quickstart" and full.board == "full"
    assert quick.task.name == full.task.name == "slu"


def test_override_changes_value():
    loaded = load_spec(ROOT / "experiments" / "slurp.gin", ["OptimizerSetup.lr = 1e-5", "Experiment.seed = 7"])
    assert loaded.experiment.optimizer.lr == 1e-5 and loaded.experiment.seed == 7
    assert "# override: OptimizerSetup.lr = 1e-5" in loaded.operative_config


def test_typo_in_parameter_names_file_line_and_hint(tmp_path):
    spec = tmp_path / "experiments" / "typo.gin"
    spec.parent.mkdir()
    spec.write_text(f"include '{ROOT / 'experiments' / 'slurp.gin'}'\n\nOptimizerSetup.lrr = 3e-4\n")
    with pytest.raises(SpecError) as err:
        load_spec(spec)
    msg = str(err.value)
    assert "typo.gin" in msg and "line 3" in msg and "did you mean 'lr'" in msg


def test_unknown_configurable_hint(tmp_path):
    spec = tmp_path / "x.gin"
    spec.write_text(f"include '{ROOT / 'experiments' / 'slurp.gin'}'\nOptimiserSetup.lr = 3e-4\n")
    with pytest.raises(SpecError, match="did you mean 'OptimizerSetup'"):
        load_spec(spec)


def test_override_typo_is_reported():
    with pytest.raises(SpecError, match="did you mean 'max_epochs'"):
        load_spec(ROOT / "experiments" / "slurp.gin", ["TrainerSetup.max_epoch = 3"])


def test_syntax_error_names_line(tmp_path):
    spec = tmp_path / "bad.gin"
    spec.write_text("Experiment.name = 'a'\nExperiment.seed = = 3\n")
    with pytest.raises(SpecError, match=r"bad\.gin:2"):
        load_spec(spec)


def test_unbalanced_bracket_in_an_override_names_the_override():
    overrides = ["Experiment.seed = 3", "OptimizerSetup.lr = (1e-3"]
    with pytest.raises(SpecError) as err:  # not tokenize.TokenError
        load_spec(ROOT / "experiments" / "slurp.gin", overrides)
    assert str(err.value).startswith(
        "--gin override #2 ('OptimizerSetup.lr = (1e-3'): gin syntax error: '(' is never closed"
    )


def test_syntax_error_in_an_override_is_not_blamed_on_the_spec():
    with pytest.raises(SpecError) as err:
        load_spec(ROOT / "experiments" / "slurp.gin", ["Experiment.seed = = 3"])
    msg = str(err.value)
    assert msg.startswith("--gin override #1 ('Experiment.seed = = 3'): gin syntax error")
    assert "slurp.gin" not in msg


def test_unknown_parameter_in_an_override_names_the_override():
    with pytest.raises(SpecError) as err:
        load_spec(ROOT / "experiments" / "slurp.gin", ["Experiment.seed = 3", "TrainerSetup.max_epoch = 3"])
    msg = str(err.value)
    assert msg.startswith("--gin override #2 ('TrainerSetup.max_epoch = 3'): Configurable 'TrainerSetup'")
    assert "did you mean 'max_epochs'" in msg and "bindings string" not in msg


@pytest.mark.parametrize(
    ("line", "says"), [("Experiment.seed = (3", "'(' is never closed"), ("Experiment.seed = = 3", "Unable to parse")]
)
def test_syntax_error_in_a_spec_file_names_file_and_line(tmp_path, line, says):
    spec = tmp_path / "bad.gin"
    spec.write_text(f"Experiment.name = 'a'\n{line}\n")
    with pytest.raises(SpecError) as err:
        load_spec(spec)
    assert str(err.value).startswith(f"{spec}:2: gin syntax error: {says}")


def test_unbalanced_bracket_in_an_included_file_names_that_file(tmp_path):
    inner = tmp_path / "inner.gin"
    inner.write_text("Experiment.name = 'a'\nExperiment.notes = {'x': [1, 2]\n\n")
    outer = tmp_path / "outer.gin"
    outer.write_text(f"include '{inner}'\nExperiment.seed = 3\n")
    with pytest.raises(SpecError) as err:
        load_spec(outer)
    assert str(err.value).startswith(f"{inner}:2: gin syntax error: '{{' is never closed")


def test_missing_spec_file(tmp_path):
    with pytest.raises(SpecError, match="not found"):
        load_spec(tmp_path / "nope.gin")
