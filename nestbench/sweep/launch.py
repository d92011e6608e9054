"""One trial = one ``nestbench run`` process.

Gin bindings and Lightning's determinism flags are process-global, so a trial never shares a process:
the sampled values go in as ``--gin`` overrides (with the trial's seed and the W&B group), and the
trial's identity goes in ``NESTBENCH_TRIAL``. The record that run appends is then a normal record,
replayable with ``nestbench run <spec> --gin ...`` (the first line of ``trials/<number>.log``).

Trial processes are forked from a server that has imported torch, Lightning and nestbench once
(``multiprocessing``'s forkserver, which never parses a spec or touches a GPU), then run exactly what
``nestbench run`` runs. That saves the seconds of imports every trial would otherwise pay, which for
a frozen-encoder quickstart trial is a large share of its cost. A trial dies with its sweep.
"""

from __future__ import annotations

import json
import os
import runpy
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from .space import binding_line

# The contract between the sweep and a trial process, besides NESTBENCH_TRIAL and the --gin overrides:
PRUNED_EXIT_CODE = 3  # `nestbench run` exits with this when the sweep's pruner stopped the trial
PRUNED_AT = "pruned_at_epoch"  # trial user attrs the trial process sets: the epoch it was pruned at,
RUN_DIR = "run_dir"  # its run folder (where the sweep reads metrics.json),
THREADS = "threads"  # and its CPU thread count


@dataclass(frozen=True)
class TrialLaunch:
    argv: list[str]
    env: dict[str, str]
    log: Path


def trial_overrides(params: dict, seed: int, study: str) -> list[str]:
    """The bindings that make this run this trial (also what ``best.gin`` writes, less the group)."""
    return [
        *(binding_line(k, v) for k, v in params.items()),
        binding_line("Experiment.seed", seed),
        binding_line("TrackingSetup.group", study),
    ]


def nestbench_argv(*words) -> list[str]:
    """The command line of ``nestbench`` with this interpreter (a trial, or the sweep's prepare step)."""
    return [sys.executable, "-m", "nestbench", *map(str, words)]


def build_launch(
    *,
    experiment_spec: Path,
    overrides: list[str],
    runs: Path,
    info: dict,
    log: Path,
    wandb: str | None,
    threads: int | None,
) -> TrialLaunch:
    argv = nestbench_argv("run", experiment_spec)
    for line in overrides:
        argv += ["--gin", line]
    argv += ["--runs-dir", str(runs), "--quiet"]
    if wandb:
        argv += ["--wandb", wandb]
    env = dict(os.environ)
    env["NESTBENCH_TRIAL"] = json.dumps(info, sort_keys=True)
    env.setdefault("PYTHONUNBUFFERED", "1")
    if threads and "OMP_NUM_THREADS" not in os.environ:  # K trials side by side share the cores
        env["OMP_NUM_THREADS"] = str(threads)
    return TrialLaunch(argv, env, log)


PRELOAD = [
    "torch",
    "lightning.pytorch",
    "optuna",
    "optuna_integration.pytorch_lightning",
    "nestbench.runner",
    "nestbench.lit",
    "nestbench.sweep.trial",
    "tasks",
]
_context = None


def _forkserver():
    global _context
    if _context is None:
        import multiprocessing

        _context = multiprocessing.get_context("forkserver")
        _context.set_forkserver_preload(PRELOAD)
    return _context


def run_launch(launch: TrialLaunch, started=None) -> int:
    """Run to the end; output to the trial log. ``started(process)`` lets the caller stop it. The exit
    code is ``nestbench run``'s (negative: killed by that signal)."""
    launch.log.parent.mkdir(parents=True, exist_ok=True)
    with open(launch.log, "ab") as out:
        out.write(("$ " + " ".join(_quote(a) for a in launch.argv) + "\n").encode())
    args = (launch.argv[3:], launch.env, str(launch.log), os.getpid())
    proc = _forkserver().Process(target=_trial_main, args=args)
    proc.start()
    if started is not None:
        started(proc)
    proc.join()
    return proc.exitcode


def _trial_main(args: list[str], env: dict, log: str, sweep_pid: int) -> None:
    """In the forked trial process: die with the sweep, write to the trial log, run `nestbench`."""
    threading.Thread(target=_die_with, args=(sweep_pid,), daemon=True).start()
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    os.environ.clear()
    os.environ.update(env)
    if env.get("OMP_NUM_THREADS"):
        import torch

        torch.set_num_threads(int(env["OMP_NUM_THREADS"]))  # torch was imported before this was set
    sys.argv = ["nestbench", *args]
    try:
        runpy.run_module("nestbench", run_name="__main__", alter_sys=True)  # `python -m nestbench ...`; exits
    finally:
        sys.stdout.flush()
        sys.stderr.flush()


def _die_with(pid: int) -> None:
    """A trial must not outlive its sweep: killed with it, it would go on training, unseen, while the
    resumed sweep re-runs it. (The kernel's parent-death signal cannot help: the trial's parent is the
    fork server, which outlives the sweep for as long as any trial holds its pipe open.)"""
    while True:
        time.sleep(1.0)
        if not _alive(pid):
            os._exit(137)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie is a dead sweep
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
            return True
        except ProcessLookupError:
            return False


def log_tail(path: Path, limit: int = 2000) -> str:
    """The end of a trial's output: where its error is."""
    if not path.exists():
        return ""
    data = path.read_bytes()[-limit:]
    return data.decode("utf-8", errors="replace")


def _quote(arg: str) -> str:
    return arg if arg and all(c.isalnum() or c in "-_./=:" for c in arg) else json.dumps(arg)
