"""Every shipped spec parses; typos fail before any work with file:line and a hint."""

from pathlib import Path

import pytest

from nestbench.experiment import Experiment
from nestbench.spec import SpecError, load_spec

ROOT = Path(__file__).resolve().parents[2]
SPECS = sorted(p for p in (ROOT / "experiments").rglob("*.gin") if "common" not in p.parts)


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NESTBENCH_CACHE", str(tmp_path / "cache"))


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_shipped_spec_parses(spec):
    loaded = load_spec(spec)
    assert isinstance(loaded.experiment, Experiment)
    assert loaded.experiment.task.metrics
    assert "Experiment.name" in loaded.operative_config


def test_quickstart_rebinds_only_data_and_encoder_sizes():
    full = load_spec(ROOT / "experiments" / "slurp.gin").experiment
    quick = load_spec(ROOT / "experiments" / "quickstart" / "slurp.gin").experiment
    assert full.encoder.checkpoint == "nvidia/ssl_en_nest_large_v1.0"
    assert quick.encoder.checkpoint.endswith(".nemo") and Path(quick.encoder.checkpoint).exists()
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


def test_missing_spec_file(tmp_path):
    with pytest.raises(SpecError, match="not found"):
        load_spec(tmp_path / "nope.gin")
