"""Which rank a process is and which run folder it uses, for each way a run can be started."""

import threading
from pathlib import Path

import pytest

from nestbench.launch import Launch, current_launch, distributed_trainer_args, run_folder

LAUNCH_VARS = (
    "NESTBENCH_RUN_DIR", "LOCAL_RANK", "RANK", "WORLD_SIZE", "NODE_RANK", "GROUP_RANK", "TORCHELASTIC_RUN_ID",
    "TORCHELASTIC_USE_AGENT_STORE", "TORCHELASTIC_RESTART_COUNT", "MASTER_ADDR", "MASTER_PORT",
    "SLURM_NTASKS", "SLURM_NTASKS_PER_NODE", "SLURM_PROCID", "SLURM_LOCALID", "SLURM_NODEID", "SLURM_JOB_ID",
    "SLURM_JOB_NAME", "SLURM_STEP_ID", "SLURM_RESTART_COUNT", "SLURM_NODELIST",
)  # fmt: skip


@pytest.fixture
def env(monkeypatch):
    for name in LAUNCH_VARS:
        monkeypatch.delenv(name, raising=False)
    return lambda **values: [monkeypatch.setenv(k, str(v)) for k, v in values.items()]


def _slurm(rank: int) -> dict:
    return dict(
        SLURM_NTASKS=2, SLURM_NTASKS_PER_NODE=1, SLURM_PROCID=rank, SLURM_LOCALID=0, SLURM_NODEID=rank,
        SLURM_JOB_ID=4242, SLURM_STEP_ID=0, SLURM_JOB_NAME="bench",
    )  # fmt: skip


def test_plain_command_is_the_single_writer(env):
    assert current_launch() == Launch("single") and current_launch().is_writer
    assert current_launch().log_name == "run.log"


def test_rank_lightning_relaunched_joins_the_inherited_folder(env, tmp_path):
    env(NESTBENCH_RUN_DIR=tmp_path, LOCAL_RANK=1, WORLD_SIZE=2)
    me = current_launch()
    assert me == Launch("lightning", 1, 2) and not me.is_writer and me.log_name == "run.rank1.log"
    with run_folder(me, lambda: pytest.fail("only rank 0 makes a folder"), tmp_path / "runs") as run_dir:
        assert run_dir == tmp_path


def test_torchrun_ranks_are_global_and_win_inside_slurm(env):
    env(TORCHELASTIC_RUN_ID="none", RANK=3, LOCAL_RANK=1, WORLD_SIZE=4, GROUP_RANK=1)
    assert current_launch() == Launch("torchrun", 3, 4)  # global, not local, rank
    env(**_slurm(0))  # torchrun started inside a SLURM allocation: Lightning, and so nestbench, go by torchrun
    assert current_launch() == Launch("torchrun", 3, 4)


def test_slurm_ranks(env):
    env(**_slurm(1))
    assert current_launch() == Launch("slurm", 1, 2)


def test_slurm_rank_0_hands_its_folder_to_the_others_through_the_runs_folder(env, tmp_path):
    env(**_slurm(0))
    runs, made, got = tmp_path / "runs", tmp_path / "runs" / "exp" / "20260101-000000", []
    read = threading.Event()

    def other_rank():
        with run_folder(Launch("slurm", 1, 2), lambda: pytest.fail("only rank 0 makes a folder"), runs) as d:
            got.append(d)
        read.set()

    threading.Thread(target=other_rank, daemon=True).start()

    def make():
        made.mkdir(parents=True)
        return made

    with run_folder(Launch("slurm", 0, 2), make, runs) as run_dir:
        assert read.wait(30)  # stands for fit, which every rank joins
    assert run_dir == made and got == [made]
    assert not list((runs / ".launch").iterdir())  # the handoff is gone once every rank has it


def test_torchrun_without_a_store_needs_a_run_id(env, tmp_path):
    env(TORCHELASTIC_RUN_ID="none", RANK=1, LOCAL_RANK=0, WORLD_SIZE=2, TORCHELASTIC_USE_AGENT_STORE="False")
    with pytest.raises(RuntimeError, match="--rdzv-id"), run_folder(current_launch(), Path, tmp_path):
        pass


@pytest.mark.parametrize(
    ("num_nodes", "devices", "strategy"),
    [(1, 1, "auto"), (1, 2, "ddp"), (2, 1, "ddp"), (4, 8, "ddp"), (1, "0,1", "auto"), (1, "auto", "auto")],
)
def test_several_nodes_or_processes_train_with_ddp(num_nodes, devices, strategy):
    assert distributed_trainer_args(num_nodes, devices) == {
        "num_nodes": num_nodes,
        "devices": devices,
        "strategy": strategy,
    }
