"""Exactly N verdicts: which trials count, and how a worker claims the next one.

A verdict is a trial that completed, was pruned, or failed by its own error. A trial whose worker
died (its heartbeat stopped) is failed and re-queued with the same parameters; the failure is then no
verdict, its re-run is. Claiming happens under the study's claim lock (``storage.ClaimLock``), so
"count, then ask" is one step for every worker of the study, in any process on any machine.
"""

from __future__ import annotations

import itertools
import random
import socket
from dataclasses import dataclass

from .definition import Sweep
from .launch import PRUNED_AT, RUN_DIR
from .samplers import make_sampler, suggest

FINISHED, WAIT = "finished", "wait"
RESET_ON_CLAIM = (RUN_DIR, PRUNED_AT, "error", "pid")  # a re-queued trial inherits its predecessor's user attrs


@dataclass(frozen=True)
class Claim:
    trial: object  # optuna.trial.Trial, RUNNING, heartbeat recorded
    params: dict
    seed: int
    rerun_of: int | None  # the interrupted trial this one repeats


def tally(trials) -> tuple[int, int]:
    """(trials with a verdict, trials running or queued)."""
    from optuna.trial import TrialState

    retried = {n for t in trials for n in t.system_attrs.get("retry_history", [])}
    verdicts = (TrialState.COMPLETE, TrialState.PRUNED)
    done = sum(1 for t in trials if t.state in verdicts or (t.state == TrialState.FAIL and t.number not in retried))
    pending = sum(1 for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING))
    return done, pending


def claim(study, storage, lock, sweep: Sweep, base_seed: int, n_trials: int):
    """The next trial to run, or ``FINISHED`` (N verdicts), or ``WAIT`` (the rest are running elsewhere:
    stay, in case one of them dies and is re-queued)."""
    import optuna
    from optuna.trial import TrialState

    with lock.held():
        optuna.storages.fail_stale_trials(study)  # re-queues through the storage's retry callback
        trials = study.get_trials(deepcopy=False)
        done, pending = tally(trials)
        if done >= n_trials:
            return FINISHED
        queued = any(t.state == TrialState.WAITING for t in trials)
        if done + pending >= n_trials and not queued:
            return WAIT
        if sweep.sampler == "grid" and not queued:
            study.enqueue_trial(next_grid_point(sweep, trials))
        study.sampler = make_sampler(sweep, n_trials, draw=len(trials))
        trial = study.ask()  # pops a re-queued trial first
        storage.record_heartbeat(trial._trial_id)
        params = {p.binding: suggest(trial, p) for p in sweep.space}
        seed = trial.user_attrs.get("seed")
        if seed is None:
            seed = base_seed + (trial.number if sweep.vary_seed else 0)
            trial.set_user_attr("seed", seed)
        rerun_of = storage.get_trial(trial._trial_id).system_attrs.get("failed_trial")
        if rerun_of is not None:
            for key in RESET_ON_CLAIM:
                trial.set_user_attr(key, None)
        trial.set_user_attr("host", socket.gethostname())
        return Claim(trial, params, int(seed), rerun_of)


def next_grid_point(sweep: Sweep, trials) -> dict:
    """The first grid point no trial has taken, in an order fixed by the seed. (Optuna's grid sampler
    would hand a failed point out again; here a failure is a verdict, so the grid moves on.)"""
    bindings = [p.binding for p in sweep.space]
    grid = itertools.product(*(p.grid() for p in sweep.space))
    points = [dict(zip(bindings, values, strict=True)) for values in grid]
    random.Random(sweep.seed).shuffle(points)
    taken = {tuple(t.params.get(b) for b in bindings) for t in trials}
    for point in points:
        if tuple(point.values()) not in taken:
            return point
    return points[0]  # every point taken: only reachable when --trials exceeds the grid, which is capped


def requeue(study, trial, why: str, max_retries: int) -> None:
    """Fail a trial that was stopped from outside (Ctrl-C) and queue it again, as a crash would."""
    import optuna
    from optuna.trial import TrialState

    trial.set_user_attr("error", why)
    frozen = study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
    optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=max_retries)(study, frozen)
