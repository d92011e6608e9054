"""DDP with two CPU processes (gloo): Lightning re-launches `nestbench run` for rank 1, which must join
rank 0's run folder, take its half of the training batches, and leave evaluation and the record to rank 0."""

import json

import pytest

from nestbench.results import ResultsStore

pytestmark = pytest.mark.slow

N_TRAIN, BATCH, EPOCHS = 48, 8, 2


def test_two_process_ddp_is_one_run_with_sharded_batches(nestbench, tiny_spec, run_env, tmp_path):
    proc = nestbench(
        "run",
        str(tiny_spec),
        "--gin",
        "TrainerSetup.devices = 2",
        "--gin",
        "TrainerSetup.accelerator = 'cpu'",
        "--gin",
        f"TrainerSetup.max_epochs = {EPOCHS}",
        "--wandb",
        "offline",
        "--quiet",
        env={**run_env, "OMP_NUM_THREADS": "1"},
        cwd=tmp_path,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.count("— results") == 1  # rank 1 trained but did not report

    runs = tmp_path / "runs"
    (record,) = ResultsStore(runs / "results.jsonl").read()  # one run, one record
    folders = [p for p in (runs / record["experiment"]).iterdir() if p.is_dir()]
    assert [p.name for p in folders] == [record["run_id"]]  # rank 1 joined rank 0's folder
    run_dir = folders[0]
    assert (run_dir / "run.log").is_file() and (run_dir / "run.rank1.log").is_file()

    # each rank took half of the batches: half the optimizer steps of one process
    assert record["device"]["devices"] == 2
    assert record["steps"] == EPOCHS * (N_TRAIN // BATCH) // 2
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert 0.0 <= metrics["test"]["intent_acc"] <= 1.0 and metrics == record["metrics"]
    assert (run_dir / "checkpoints" / "best.ckpt").is_file()
    assert len(list((run_dir / "wandb").glob("offline-run-*"))) == 1  # one W&B run, from rank 0
