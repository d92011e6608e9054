"""The pretrained quickstart checkpoint shipped in the repository is what its recorded provenance says:
the file's sha256, NeMo's layout, and the pretraining spec as it is now (a spec edited without
rebuilding the checkpoint fails here, naming the command that rebuilds it)."""

import json
from pathlib import Path

from nestbench.checkpoint import load_nemo
from nestbench.checkpoint.nemo_file import file_sha256
from nestbench.provenance import config_hash
from nestbench.spec import load_spec

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "experiments" / "quickstart" / "checkpoints" / "nest_mini_ssl.nemo"
PROVENANCE = SHIPPED.with_suffix(".json")
REBUILD = "see the header of experiments/quickstart/checkpoints/nest_mini_ssl.json (rebuild_command)"


def test_the_shipped_checkpoint_matches_its_recorded_provenance(tmp_path, monkeypatch):
    monkeypatch.setenv("NESTBENCH_CACHE", str(tmp_path / "cache"))
    record = json.loads(PROVENANCE.read_text())
    assert SHIPPED.stat().st_size <= 20 * 2**20
    assert file_sha256(SHIPPED) == record["export"]["sha256"], f"the file is not the recorded export; {REBUILD}"
    spec = load_spec(ROOT / record["spec"], record["overrides"], root="PretrainExperiment")
    assert config_hash(spec.operative_config) == record["config_hash"], f"pretrain.gin changed since; {REBUILD}"
    assert not record["git"]["dirty"], "built from uncommitted code"
    assert record["metrics"]["export"]["encoder_max_abs_diff"] == 0.0
    assert record["metrics"]["export"]["targets_identical"] is True

    ckpt = load_nemo(SHIPPED)
    assert ckpt.config["target"].endswith("EncDecDenoiseMaskedTokenPredModel")
    enc = record["export"]["encoder"]
    assert ckpt.config["encoder"]["n_layers"] == enc["n_layers"] and ckpt.config["encoder"]["d_model"] == enc["d_model"]
    assert ckpt.config["quantizer"]["num_classes"] == enc["num_classes"]
