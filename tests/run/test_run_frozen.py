"""`nestbench run` with a frozen encoder: features cached once, every later run trains only the head."""

import csv
import json
from pathlib import Path

import pytest
import torch

from nestbench.results import ResultsStore

ROOT = Path(__file__).resolve().parents[2]
N_UTTERANCES = 48 + 12 + 12  # the tiny quickstart's train + devel + test


@pytest.fixture(scope="module")
def tiny_frozen_spec(tiny_spec, tmp_path_factory) -> Path:
    """The frozen quickstart spec with the tiny quickstart's sizes (``tiny_spec`` minus its include)."""
    include, tiny_overrides = tiny_spec.read_text().split("\n", 1)
    assert include.startswith("include ")
    spec = tmp_path_factory.mktemp("specs") / "tiny_quickstart_frozen.gin"
    frozen = ROOT / "experiments" / "quickstart" / "slurp_frozen.gin"
    spec.write_text(f"include '{frozen}'\n{tiny_overrides}\nTrainerSetup.max_epochs = 4\n")
    return spec


def _runs(runs: Path, name: str) -> list[Path]:
    return sorted(p for p in (runs / name).iterdir() if p.is_dir())


def test_second_run_reads_every_feature_from_the_cache(nestbench, tiny_frozen_spec, run_env, tmp_path):
    two_layers = ("--gin", "make_tiny_nest.n_layers = 2")  # a layer profile with a mix to learn
    args = ("run", str(tiny_frozen_spec), "--quiet", "--wandb", "disabled", *two_layers)
    first = nestbench(*args, env=run_env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    second = nestbench(*args, env=run_env, cwd=tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]

    cold, warm = ResultsStore(tmp_path / "runs" / "results.jsonl").read()
    assert cold["encoder"]["mode"] == "frozen" and cold["encoder"]["aggregation"] == "superb"
    assert cold["feature_cache"]["hits"] == 0 and cold["feature_cache"]["computed"] == N_UTTERANCES
    assert warm["feature_cache"] == {"key": cold["feature_cache"]["key"], "hits": N_UTTERANCES, "computed": 0}
    assert f"features: {N_UTTERANCES} cached, 0 computed" in second.stderr
    key = cold["feature_cache"]["key"]
    cached = list((tmp_path / "cache" / "features" / key).rglob("*.npy"))
    assert len(cached) == N_UTTERANCES and not list((tmp_path / "cache" / "features").rglob("*.tmp"))
    # where the features came from does not change the result: same head init, same batches, same numbers
    assert warm["metrics"] == cold["metrics"]

    run_a, run_b = _runs(tmp_path / "runs", "quickstart_slurp_frozen")
    for run in (run_a, run_b):
        with open(run / "csv" / "metrics.csv", newline="") as f:
            rows = [r for r in csv.DictReader(f) if r.get("layer_weight/0")]
        assert rows, "layer weights are logged at every validation"
        weights = [float(rows[-1][f"layer_weight/{i}"]) for i in range(2)]
        assert sum(weights) == pytest.approx(1.0)
        # the run's checkpoints hold the head and the layer weights, not the encoder
        state = torch.load(run / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True)["state_dict"]
        assert "upstream.aggregator.weights" in state and not any(k.startswith("upstream.encoder.") for k in state)
        # the best checkpoint's layer profile: in the run folder and in the record, softmax weights summing to 1
        record = json.loads((run / "run.json").read_text())
        assert json.loads((run / "layer_weights.json").read_text()) == record["layer_weights"]
        assert record["layer_weights"]["protocol"] == "superb" and set(record["layer_weights"]["weights"]) == {"0", "1"}
        assert sum(record["layer_weights"]["weights"].values()) == pytest.approx(1.0)
        assert (run / "layer_weights.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_frozen_without_cache_runs_the_encoder(nestbench, tiny_frozen_spec, run_env, tmp_path):
    proc = nestbench(
        "run",
        str(tiny_frozen_spec),
        "--quiet",
        "--wandb",
        "disabled",
        "--gin",
        "EncoderSetup.cache_features = False",
        "--gin",
        "TrainerSetup.max_epochs = 1",
        env=run_env,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (record,) = ResultsStore(tmp_path / "runs" / "results.jsonl").read()
    assert record["feature_cache"] is None and record["encoder"]["mode"] == "frozen"
    assert not (tmp_path / "cache" / "features").exists()


def test_frozen_specaugment_with_cache_is_refused_before_any_work(nestbench, tiny_frozen_spec, run_env, tmp_path):
    proc = nestbench("run", str(tiny_frozen_spec), "--gin", "EncoderSetup.time_masks = 2", env=run_env, cwd=tmp_path)
    assert proc.returncode == 2
    assert "SpecAugment" in proc.stderr and "EncoderSetup.cache_features = False" in proc.stderr, proc.stderr
    assert not (tmp_path / "runs").exists() and "Traceback" not in proc.stderr


def test_prepare_fills_the_cache_and_the_run_only_trains(nestbench, tiny_frozen_spec, run_env, tmp_path):
    prep = nestbench("prepare", str(tiny_frozen_spec), "--quiet", env=run_env, cwd=tmp_path)
    assert prep.returncode == 0, prep.stderr[-3000:]
    summary = json.loads(prep.stdout.strip().splitlines()[-1])
    assert summary["utterances"] == {"train": 48, "dev": 12, "test": 12}
    assert summary["feature_cache"]["computed"] == N_UTTERANCES and summary["feature_cache"]["hits"] == 0
    assert not (tmp_path / "runs" / "quickstart_slurp_frozen").exists()  # no run folder, no record
    assert not (tmp_path / "runs" / "results.jsonl").exists()

    run = nestbench("run", str(tiny_frozen_spec), "--quiet", "--wandb", "disabled", env=run_env, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    (record,) = ResultsStore(tmp_path / "runs" / "results.jsonl").read()
    assert record["feature_cache"] == {**summary["feature_cache"], "hits": N_UTTERANCES, "computed": 0}


def test_last_checkpoint_is_the_last_epoch_even_when_dev_stops_improving(
    nestbench, tiny_frozen_spec, run_env, tmp_path
):
    """Resume reads last.ckpt: it must hold the final epoch, not the best one (Lightning's save_last
    alone refreshes it only when the best changes). Validation every 2 of 3 epochs leaves the final
    epoch without a new best, deterministically."""
    spec = tmp_path / "every_other.gin"
    spec.write_text(
        f"include '{tiny_frozen_spec}'\nTrainerSetup.max_epochs = 3\nTrainerSetup.check_val_every_n_epoch = 2\n"
    )
    proc = nestbench("run", str(spec), "--quiet", "--wandb", "disabled", env=run_env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run,) = _runs(tmp_path / "runs", "quickstart_slurp_frozen")
    last = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    best = torch.load(run / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=False)
    assert best["epoch"] == 1 and last["epoch"] == 2
    assert last["global_step"] == json.loads((run / "run.json").read_text())["steps"]
