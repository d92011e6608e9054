"""Which process of a run this is, which run folder it uses, and whether it writes the results.

A run is one process or several. On one machine with ``TrainerSetup.devices > 1`` Lightning starts
the other ranks itself, by running the same command again; they inherit rank 0's folder through
``NESTBENCH_RUN_DIR``. On several machines every rank is started from outside, by ``torchrun`` on
each node or by SLURM's ``srun``, and nothing is inherited: global rank 0 makes the folder (new, or
the one ``--resume`` names) and publishes its path under the job's key; the other ranks wait for it.

Why a handoff and not a folder name derived from the job: the name stays the usual timestamp, and
``--resume latest`` is decided once, by rank 0, so every rank continues the same folder. Where the
path travels, chosen for being unique to this job (a stale value from an earlier job is never read):

- torchrun: its agent's key-value store (the c10d ``TCPStore`` at ``MASTER_ADDR:MASTER_PORT``, which
  the job's own process group also uses), keyed by the restart count;
- SLURM, or torchrun without a shared store: a small file under ``<runs>/.launch/`` named by the job
  (``SLURM_JOB_ID``, step, restart count; or torchrun's ``--rdzv-id``). The runs folder is on a
  filesystem every node sees, as the checkpoints and the record already require.

Since the other ranks wait for the path, rank 0's ``make`` is also where it prepares the files every
rank reads (the runner: data and feature cache), so no two ranks build the same files at once.

Rank 0 alone writes ``run.json``, ``metrics.json``, the results record and the W&B run; every rank
logs to its own ``run.rank<k>.log`` (rank 0 to ``run.log``) in the shared folder.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Literal

from .fileio import write_text_atomic

log = logging.getLogger(__name__)

RUN_DIR_ENV = "NESTBENCH_RUN_DIR"  # rank 0's run folder, for the DDP ranks Lightning re-launches
# rank 0 first prepares the data and a frozen encoder's feature cache (hours for a large corpus, unless
# `nestbench prepare` ran before); a rank 0 that dies ends the job sooner (torchrun's store goes, srun kills)
HANDOFF_TIMEOUT_S = 6 * 3600.0

Launcher = Literal["single", "lightning", "torchrun", "slurm"]


@dataclass(frozen=True)
class Launch:
    """This process's place in the run. ``world_size`` counts the processes started so far: a plain
    command is ``single`` (1) even when Lightning will start more ranks for it inside ``fit``."""

    launcher: Launcher
    rank: int = 0  # global rank
    world_size: int = 1

    @property
    def is_writer(self) -> bool:
        """Global rank 0: makes the run folder, writes the record and the W&B run."""
        return self.rank == 0

    @property
    def log_name(self) -> str:
        return "run.log" if self.is_writer else f"run.rank{self.rank}.log"


def current_launch() -> Launch:
    """Read from the environment with Lightning's own cluster detection, in its order (torchrun
    before SLURM, since torchrun may run inside a SLURM allocation), so both agree on the ranks."""
    from lightning.fabric.plugins.environments import SLURMEnvironment, TorchElasticEnvironment

    for launcher, env_type in (("torchrun", TorchElasticEnvironment), ("slurm", SLURMEnvironment)):
        if env_type.detect():
            env = env_type()
            return Launch(launcher, env.global_rank(), env.world_size())
    if os.environ.get(RUN_DIR_ENV) and os.environ.get("LOCAL_RANK", "0") != "0":
        return Launch("lightning", int(os.environ["LOCAL_RANK"]), int(os.environ.get("WORLD_SIZE", 2)))
    return Launch("single")


@contextlib.contextmanager
def run_folder(launch: Launch, make: Callable[[], Path], runs: Path) -> Iterator[Path]:
    """The run folder every rank uses: ``make()``'s on global rank 0, published to the others.

    While the block runs, ``NESTBENCH_RUN_DIR`` names it, for the ranks Lightning re-launches. A file
    handoff is removed when rank 0's block ends: the block must include a step every rank joins
    (Lightning's ``fit``), so that by then every rank has read it.
    """
    if launch.launcher == "lightning":
        run_dir = Path(os.environ[RUN_DIR_ENV])
    elif launch.world_size == 1:
        run_dir = make()
    else:
        run_dir = _handed_off(launch, make, runs)
    previous = os.environ.get(RUN_DIR_ENV)
    os.environ[RUN_DIR_ENV] = str(run_dir)
    try:
        yield run_dir
    finally:
        if previous is None:
            os.environ.pop(RUN_DIR_ENV, None)
        else:
            os.environ[RUN_DIR_ENV] = previous
        if launch.is_writer and launch.world_size > 1 and not _shares_agent_store(launch):
            _handoff_file(launch, runs).unlink(missing_ok=True)


def distributed_trainer_args(num_nodes: int, devices: int | str) -> dict:
    """``pl.Trainer``'s ``num_nodes``/``devices``/``strategy``: DDP for several processes per node
    or several nodes (even with one device each), Lightning's choice otherwise. The launched world
    (torchrun's or SLURM's) must equal ``num_nodes`` x ``devices``; Lightning checks it."""
    several = num_nodes > 1 or (isinstance(devices, int) and devices > 1)
    return {"num_nodes": num_nodes, "devices": devices, "strategy": "ddp" if several else "auto"}


def _handed_off(launch: Launch, make: Callable[[], Path], runs: Path) -> Path:
    store = _agent_store() if _shares_agent_store(launch) else None
    key = f"nestbench/run_dir/{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}"
    if launch.is_writer:
        run_dir = make()
        if store is not None:
            store.set(key, str(run_dir))
        else:
            path = _handoff_file(launch, runs)
            path.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(path, str(run_dir))
        return run_dir
    log.info("rank %d waits for rank 0's run folder", launch.rank)
    if store is not None:
        return Path(store.get(key).decode())
    return _wait_for_file(_handoff_file(launch, runs))


def _shares_agent_store(launch: Launch) -> bool:
    """torchrun's agents share their store with the workers unless told not to."""
    return launch.launcher == "torchrun" and os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True"


def _agent_store():
    """A client of torchrun's store (its agent on node 0 hosts it for the whole job)."""
    from torch.distributed import TCPStore

    return TCPStore(
        os.environ["MASTER_ADDR"],
        int(os.environ["MASTER_PORT"]),
        is_master=False,
        timeout=timedelta(seconds=HANDOFF_TIMEOUT_S),
        wait_for_workers=False,
    )


def _handoff_file(launch: Launch, runs: Path) -> Path:
    return Path(runs) / ".launch" / f"{_job_key(launch)}.run_dir"


def _job_key(launch: Launch) -> str:
    """Unique to this job (and attempt): SLURM's job, step and requeue count, or torchrun's run id."""
    e = os.environ
    if launch.launcher == "slurm":
        return f"slurm-{e['SLURM_JOB_ID']}.{e.get('SLURM_STEP_ID', '0')}.{e.get('SLURM_RESTART_COUNT', '0')}"
    run_id = e.get("TORCHELASTIC_RUN_ID", "none")
    if run_id == "none":
        raise RuntimeError(
            "torchrun without a shared store: give each node the same unique --rdzv-id so that its ranks "
            "can find rank 0's run folder"
        )
    return f"torchrun-{run_id}.{e.get('TORCHELASTIC_RESTART_COUNT', '0')}"


def _wait_for_file(path: Path) -> Path:
    deadline = time.monotonic() + HANDOFF_TIMEOUT_S
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"rank 0 did not publish its run folder in {path} within {HANDOFF_TIMEOUT_S:.0f} s")
        time.sleep(1.0)
    return Path(path.read_text(encoding="utf-8").strip())
