"""`nestbench run` end to end on the tiny quickstart: real data files, real Lightning, real W&B offline."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from nestbench.metrics.slurp import load_predictions
from nestbench.results import ResultsStore
from nestbench.testing.wandb_offline import read_offline_run

ROOT = Path(__file__).resolve().parents[2]
SLU_KEYS = ("intent_acc", "slu_f1", "scenario_acc", "action_acc", "slu_f1_word", "slu_f1_char")


def _csv_rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _only_run(runs: Path, name: str) -> Path:
    (run,) = [p for p in (runs / name).iterdir() if p.is_dir()]
    return run


def test_run_writes_everything_and_learns(nestbench, tiny_spec, run_env, tmp_path):
    proc = nestbench("run", str(tiny_spec), "--quiet", env=run_env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "intent_acc" in proc.stdout and "run folder" in proc.stdout
    runs = tmp_path / "runs"
    run = _only_run(runs, "quickstart_slurp")
    for name in (
        "config.gin",
        "metrics.json",
        "run.json",
        "run.log",
        "checkpoints/last.ckpt",
        "checkpoints/best.ckpt",
        "predictions/test.jsonl",
        "predictions/dev.jsonl",
        "csv/metrics.csv",
        "tokenizer/slu.model",
    ):
        assert (run / name).exists(), name

    metrics = json.loads((run / "metrics.json").read_text())
    for split in ("dev", "test"):
        for key in SLU_KEYS:
            assert 0.0 <= metrics[split][key] <= 1.0
        assert metrics[split]["coverage"] == 1.0
    preds = load_predictions(run / "predictions" / "test.jsonl")
    assert len(preds) == 12

    (record,) = ResultsStore(runs / "results.jsonl").read()
    assert record["metrics"] == metrics
    assert len(record["config_hash"]) == 64 and len(record["data_fingerprint"]) == 64
    assert len(record["encoder"]["sha256"]) == 64 and record["encoder"]["mode"] == "finetune"
    assert {"commit", "dirty"} <= set(record["git"]) and "torch" in record["packages"]
    assert record["seed"] == 42 and record["board"] == "quickstart" and record["wall_seconds"] > 0
    # no machine paths: the spec as named under the working directory, the run folder under the runs folder
    assert record["spec"] == tiny_spec.name or not Path(record["spec"]).is_absolute()
    assert record["run_dir"] == f"quickstart_slurp/{run.name}" and "device" in record
    assert record["layer_weights"] is None and not (run / "layer_weights.png").exists()  # fine-tuned: last layer

    # it learns: training loss falls well below where it started, and held-out loss falls too
    rows = _csv_rows(run / "csv" / "metrics.csv")
    losses = [float(r["train/loss"]) for r in rows if r.get("train/loss")]
    assert sum(losses[-3:]) / 3 < 0.7 * sum(losses[:3]) / 3, losses
    dev = [float(r["dev/loss"]) for r in rows if r.get("dev/loss")]
    assert min(dev[1:]) < dev[0], dev

    # W&B offline run: operative config hash, curves, final metrics, predictions table, config file
    wb = read_offline_run(run / "wandb")
    assert wb.config["config_hash"] == record["config_hash"]
    assert any("train/loss" in h for h in wb.history)
    assert wb.summary["test/intent_acc"] == pytest.approx(metrics["test"]["intent_acc"])
    assert "Experiment.name = 'quickstart_slurp'" in wb.config["operative_config"]
    (table,) = wb.files("media/table/**/predictions*.table.json")
    logged = json.loads(table.read_text())
    assert logged["columns"] == ["id", "reference", "prediction"] and len(logged["data"]) == 12


def test_kill_and_resume_matches_uninterrupted(nestbench, tiny_spec, run_env, tmp_path):
    spec_args = ["run", str(tiny_spec), "--quiet", "--wandb", "disabled", "--gin", "TrainerSetup.max_epochs = 5"]
    straight = nestbench(*spec_args, "--runs-dir", str(tmp_path / "a"), env=run_env, cwd=tmp_path)
    assert straight.returncode == 0, straight.stderr[-3000:]
    expected = json.loads((_only_run(tmp_path / "a", "quickstart_slurp") / "metrics.json").read_text())

    runs_b = tmp_path / "b"
    proc = subprocess.Popen(
        [sys.executable, "-m", "nestbench.cli", *spec_args, "--runs-dir", str(runs_b)],
        env=run_env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 300
    while time.time() < deadline:  # kill it once an epoch-end checkpoint past epoch 1 exists
        metrics_csv = list(runs_b.glob("quickstart_slurp/*/csv/metrics.csv"))
        if metrics_csv and sum(1 for r in _csv_rows(metrics_csv[0]) if r.get("dev/intent_acc")) >= 2:
            break
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    run = _only_run(runs_b, "quickstart_slurp")
    assert (run / "checkpoints" / "last.ckpt").exists() and not (run / "metrics.json").exists()

    resumed = nestbench(*spec_args, "--runs-dir", str(runs_b), "--resume", env=run_env, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert json.loads((run / "metrics.json").read_text()) == expected
    assert len(ResultsStore(runs_b / "results.jsonl").read()) == 1
    # not only the same scores: the same weights, bit for bit (dropout and dither replayed step by step)
    weights = [_state(r / "checkpoints" / "last.ckpt") for r in (_only_run(tmp_path / "a", "quickstart_slurp"), run)]
    assert weights[0].keys() == weights[1].keys()
    differ = [k for k in weights[0] if not torch.equal(weights[0][k], weights[1][k])]
    assert not differ, f"{len(differ)} tensors differ after resume, e.g. {differ[:3]}"
    # and the whole curve: the rows logged before the kill kept, those after the checkpoint replaced
    curves = [_csv_rows(r / "csv" / "metrics.csv") for r in (_only_run(tmp_path / "a", "quickstart_slurp"), run)]
    assert curves[1] == curves[0] and any(row.get("dev/intent_acc") for row in curves[1])


def _state(ckpt: Path) -> dict:
    return torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]


def test_resume_with_changed_spec_is_refused(nestbench, tiny_spec, run_env, tmp_path):
    run = tmp_path / "runs" / "quickstart_slurp" / "20200101-000000"
    run.mkdir(parents=True)
    (run / "config.gin").write_text("Experiment.name = 'something else'\n")
    proc = nestbench("run", str(tiny_spec), "--resume", str(run), env=run_env, cwd=tmp_path)
    assert proc.returncode == 2 and "operative config changed" in proc.stderr


def test_full_slurp_spec_fails_fast_saying_what_to_download(nestbench, run_env, tmp_path):
    start = time.time()
    proc = nestbench("run", str(ROOT / "experiments" / "slurp.gin"), env=run_env, cwd=tmp_path)
    assert proc.returncode == 2
    assert time.time() - start < 60
    err = proc.stderr
    assert "nestbench download slurp" in err and "data/slurp" in err
    assert "ssl_en_nest_large_v1.0.nemo" in err and "huggingface.co/nvidia/ssl_en_nest_large_v1.0" in err
    assert not (tmp_path / "runs" / "slurp").exists()  # no run folder, nothing trained


def test_missing_and_corrupt_audio_stop_before_training(nestbench, tiny_spec, run_env, tmp_path):
    from nestbench.synth.slurp_mini import MiniSlurpConfig, make_mini_slurp

    corpus = make_mini_slurp(tmp_path / "corpus", MiniSlurpConfig(n_train=8, n_devel=4, n_test=4), progress=False)
    audio = sorted((corpus / "audio" / "slurp_real").glob("*.flac"))
    audio[0].unlink()
    spec = tmp_path / "real_layout.gin"
    spec.write_text(
        f"include '{tiny_spec}'\nExperiment.data = @SlurpData()\nSlurpData.corpus_dir = '{corpus}'\n"
        "SlurpData.train_splits = ('train',)\n"
    )
    proc = nestbench("run", str(spec), "--quiet", "--wandb", "disabled", env=run_env, cwd=tmp_path)
    assert proc.returncode == 2 and audio[0].name in proc.stderr, proc.stderr[-2000:]
    assert not list((tmp_path / "runs").glob("quickstart_slurp/*/checkpoints"))

    make_mini_slurp(tmp_path / "corpus2", MiniSlurpConfig(n_train=8, n_devel=4, n_test=4), progress=False)
    broken = sorted((tmp_path / "corpus2" / "audio" / "slurp_real").glob("*.flac"))[1]
    broken.write_bytes(b"fLaC\x00\x00garbage")
    spec.write_text(spec.read_text().replace(str(corpus), str(tmp_path / "corpus2")))
    proc = nestbench("run", str(spec), "--quiet", "--wandb", "disabled", env=run_env, cwd=tmp_path)
    assert proc.returncode == 2 and broken.name in proc.stderr, proc.stderr[-2000:]
    assert not list((tmp_path / "runs").glob("quickstart_slurp/*/checkpoints"))


def test_spec_typo_fails_before_any_work(nestbench, tiny_spec, run_env, tmp_path):
    proc = nestbench("run", str(tiny_spec), "--gin", "TrainerSetup.max_epoch = 2", env=run_env, cwd=tmp_path)
    assert proc.returncode == 2 and "did you mean 'max_epochs'" in proc.stderr
    assert not (tmp_path / "runs").exists()
