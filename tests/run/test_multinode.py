"""Two 'nodes' on 127.0.0.1: `torchrun --nnodes 2 --node-rank k` starts one `nestbench run` (or
`nestbench pretrain`) process on each (gloo on CPU). Global rank 0 alone makes the run folder, records
and tracks; rank 1 joins its folder through torchrun's store and trains on its half of the batches."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nestbench.results import ResultsStore

pytestmark = pytest.mark.slow

N_TRAIN, BATCH, EPOCHS = 48, 8, 2
TORCHRUN = Path(sys.executable).with_name("torchrun")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _node(rank: int, port: int, spec: Path, env: dict, cwd: Path, out, verb="run", gin=()) -> subprocess.Popen:
    cmd = [
        str(TORCHRUN), "--nnodes", "2", "--nproc-per-node", "1", "--node-rank", str(rank),
        "--master-addr", "127.0.0.1", "--master-port", str(port),
        "-m", "nestbench.cli", verb, str(spec), *[a for g in gin for a in ("--gin", g)],
        "--gin", "TrainerSetup.num_nodes = 2",
        "--gin", "TrainerSetup.accelerator = 'cpu'",
        "--gin", f"TrainerSetup.max_epochs = {EPOCHS}",
        "--wandb", "offline", "--quiet",
    ]  # fmt: skip
    # a session of its own: a hung node is killed with its worker, not only the torchrun agent
    return subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _wait(nodes: list[subprocess.Popen], timeout: float) -> list[int | None]:
    """Exit codes once both nodes end, or as soon as one fails (the other would wait for it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        codes = [p.poll() for p in nodes]
        if None not in codes or any(c not in (None, 0) for c in codes):
            return codes
        time.sleep(0.5)
    return [p.poll() for p in nodes]


def _two_nodes(spec: Path, run_env: dict, tmp_path: Path, **kw) -> list[str]:
    """Both nodes' output, once both exited 0."""
    env = {**run_env, "OMP_NUM_THREADS": "1"}
    port = _free_port()
    logs = [tmp_path / f"node{k}.out" for k in (0, 1)]
    with logs[0].open("w") as out0, logs[1].open("w") as out1:
        nodes = [_node(k, port, spec, env, tmp_path, out, **kw) for k, out in enumerate((out0, out1))]
        try:
            codes = _wait(nodes, timeout=600)
        finally:
            for p in nodes:
                if p.poll() is None:
                    os.killpg(p.pid, signal.SIGKILL)
    outs = [log.read_text() for log in logs]
    assert codes == [0, 0], outs[0][-3000:] + outs[1][-3000:]
    assert "— results" in outs[0] and sum(o.count("— results") for o in outs) == 1  # rank 0 reports, once
    return outs


def test_two_torchrun_nodes_are_one_run_with_sharded_batches(tiny_spec, run_env, tmp_path):
    _two_nodes(tiny_spec, run_env, tmp_path)

    runs = tmp_path / "runs"
    (record,) = ResultsStore(runs / "results.jsonl").read()  # one run, one record
    folders = [p for p in (runs / record["experiment"]).iterdir() if p.is_dir()]
    assert [p.name for p in folders] == [record["run_id"]]  # node 1 joined rank 0's folder
    run_dir = folders[0]
    assert (run_dir / "run.log").is_file() and (run_dir / "run.rank1.log").is_file()
    assert "launcher='torchrun', rank=1, world_size=2" in (run_dir / "run.rank1.log").read_text()

    # each node took half of the batches: half the optimizer steps of one process
    assert record["device"]["num_nodes"] == 2 and record["device"]["devices"] == 1
    assert record["steps"] == EPOCHS * (N_TRAIN // BATCH) // 2
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert 0.0 <= metrics["test"]["intent_acc"] <= 1.0 and metrics == record["metrics"]
    assert (run_dir / "checkpoints" / "best.ckpt").is_file()
    assert len(list((run_dir / "wandb").glob("offline-run-*"))) == 1  # one W&B run, from global rank 0
    assert not (runs / ".launch").exists() or not any((runs / ".launch").iterdir())  # no handoff file left


def test_two_torchrun_nodes_pretrain_as_one_run(run_env, tmp_path):
    tiny = [
        "SpeechMiniAudio.n_train = 32", "SpeechMiniAudio.n_dev = 4", "SpeechMiniAudio.n_train_speakers = 4",
        "SpeechMiniAudio.n_dev_speakers = 1", "SpeechMiniAudio.noise_clips = 6", "make_tiny_nest.d_model = 32",
        "make_tiny_nest.n_layers = 1", "make_tiny_nest.n_heads = 2", "make_tiny_nest.subsampling_conv_channels = 8",
        "NestObjectiveSetup.num_classes = 64", "TrainerSetup.batch_size = 8", "TrainerSetup.cpu_threads = 1",
    ]  # fmt: skip
    spec = Path(__file__).resolve().parents[2] / "experiments" / "quickstart" / "pretrain.gin"
    _two_nodes(spec, run_env, tmp_path, verb="pretrain", gin=tiny)

    runs = tmp_path / "runs"
    (record,) = ResultsStore(runs / "results.jsonl").read()
    run_dir = runs / record["run_dir"]
    assert [p.name for p in (runs / "quickstart_pretrain").iterdir()] == [run_dir.name]
    assert "launcher='torchrun', rank=1, world_size=2" in (run_dir / "run.rank1.log").read_text()
    assert record["device"]["num_nodes"] == 2
    assert record["steps"] == EPOCHS * (32 // 8) // 2  # 4 batches an epoch, 2 per node
    assert (run_dir / "nest.nemo").is_file() and record["metrics"]["export"]["encoder_max_abs_diff"] == 0.0
