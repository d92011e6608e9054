"""Exactly N verdicts, whatever the workers do: counting, claiming under the lock, re-queuing the dead."""

import multiprocessing as mp
import time
from pathlib import Path

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from nestbench.sweep import Categorical, FloatRange, IntRange, Sweep
from nestbench.sweep.accounting import FINISHED, WAIT, Claim, claim, tally
from nestbench.sweep.samplers import make_sampler
from nestbench.sweep.storage import ClaimLock, open_storage

SWEEP = Sweep(space=[FloatRange("OptimizerSetup.lr", 1e-4, 1e-2, log=True), Categorical("SluTask.dropout", [0.0, 0.1])])
optuna.logging.set_verbosity(optuna.logging.WARNING)


def _study(url: str, heartbeat: int | None = None):
    storage = open_storage(url, heartbeat=heartbeat)
    study = optuna.create_study(study_name="s", storage=storage, direction="maximize", load_if_exists=True)
    return study, storage, ClaimLock(url, "s")


def test_tally_counts_verdicts_not_requeued_failures():
    study = optuna.create_study()
    dist = {"x": FloatDistribution(0, 1)}
    for state, value in ((TrialState.COMPLETE, 0.5), (TrialState.PRUNED, None), (TrialState.FAIL, None)):
        study.add_trial(create_trial(state=state, value=value, params={"x": 0.1}, distributions=dist))
    study.add_trial(create_trial(state=TrialState.FAIL, params={"x": 0.2}, distributions=dist))  # #3, crashed
    study.add_trial(
        create_trial(
            state=TrialState.WAITING,
            params={"x": 0.2},
            distributions=dist,
            system_attrs={"failed_trial": 3, "retry_history": [3]},
        )
    )
    done, pending = tally(study.get_trials())
    assert (done, pending) == (3, 1)  # complete + pruned + own failure; the crash is re-run, not counted


def test_samplers_are_reproducible_per_draw():
    def sample(draw: int) -> dict:
        study = optuna.create_study(sampler=make_sampler(SWEEP, 10, draw))
        trial = study.ask()
        return {"lr": trial.suggest_float("lr", 1e-4, 1e-2, log=True)}

    assert sample(3) == sample(3) and sample(3) != sample(4)


def test_claim_stops_at_n_and_waits_for_running_trials(tmp_path):
    study, storage, lock = _study(f"sqlite:///{tmp_path / 'study.db'}", heartbeat=60)
    first = claim(study, storage, lock, SWEEP, 42, n_trials=2)
    second = claim(study, storage, lock, SWEEP, 42, n_trials=2)
    assert isinstance(first, Claim) and isinstance(second, Claim) and first.seed == second.seed == 42
    assert claim(study, storage, lock, SWEEP, 42, n_trials=2) == WAIT  # both running: none asked for
    study.tell(first.trial, 0.5)
    study.tell(second.trial, state=TrialState.FAIL)
    assert claim(study, storage, lock, SWEEP, 42, n_trials=2) == FINISHED
    assert len(study.trials) == 2


def test_dead_worker_trial_is_failed_and_rerun_with_its_parameters(tmp_path):
    study, storage, lock = _study(f"sqlite:///{tmp_path / 'study.db'}", heartbeat=1)
    dead = claim(study, storage, lock, SWEEP, 7, n_trials=2)  # no heartbeat follows: its worker "died"
    assert claim(study, storage, lock, SWEEP, 7, n_trials=1) == WAIT
    deadline = time.time() + 15  # grace period: 3 heartbeats (SQLite timestamps are whole seconds)
    while (rerun := claim(study, storage, lock, SWEEP, 7, n_trials=1)) == WAIT and time.time() < deadline:
        time.sleep(0.5)
    assert isinstance(rerun, Claim) and rerun.rerun_of == dead.trial.number
    assert rerun.params == dead.params and rerun.seed == 7
    assert study.trials[dead.trial.number].state == TrialState.FAIL
    study.tell(rerun.trial, 0.25)
    assert tally(study.get_trials()) == (1, 0)
    assert claim(study, storage, lock, SWEEP, 7, n_trials=1) == FINISHED


def _hammer(url: str, n_trials: int, out) -> None:
    study, storage, lock = _study(url)
    ran = []
    while True:
        got = claim(study, storage, lock, SWEEP, 0, n_trials)
        if got == FINISHED:
            break
        if got == WAIT:
            time.sleep(0.01)
            continue
        ran.append(got.trial.number)
        study.tell(got.trial, float(got.trial.number))
    out.put(ran)


@pytest.mark.parametrize("processes", [4])
def test_concurrent_claimants_run_exactly_n_trials(tmp_path, processes):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    _study(url)  # create it once, as the first sweep process does
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_hammer, args=(url, 12, out)) for _ in range(processes)]
    for p in procs:
        p.start()
    ran = [n for _ in procs for n in out.get(timeout=120)]
    for p in procs:
        p.join(timeout=30)
    assert sorted(ran) == list(range(12))  # none twice, none lost, none extra
    assert len(optuna.load_study(study_name="s", storage=url).trials) == 12


def test_storage_paths_are_created_for_sqlite(tmp_path):
    url = f"sqlite:///{tmp_path / 'deep' / 'er' / 'study.db'}"
    open_storage(url)
    assert Path(tmp_path / "deep" / "er" / "study.db").exists()


def test_grid_visits_every_point_once_even_after_failures(tmp_path):
    space = [Categorical("OptimizerSetup.schedule", ["constant", "noam"]), Categorical("SluTask.dropout", [0.0, 0.1])]
    grid = Sweep(space=space, sampler="grid")
    study, storage, lock = _study(f"sqlite:///{tmp_path / 'study.db'}")
    seen = []
    while (got := claim(study, storage, lock, grid, 0, n_trials=4)) != FINISHED:
        seen.append(tuple(got.params.values()))
        study.tell(got.trial, state=TrialState.FAIL)  # failing points are not handed out again
    assert sorted(seen) == sorted([("constant", 0.0), ("constant", 0.1), ("noam", 0.0), ("noam", 0.1)])


@pytest.mark.parametrize("sampler", ["tpe", "random", "grid", "cmaes"])
def test_every_sampler_proposes_inside_the_space(tmp_path, sampler):
    space = [
        FloatRange("OptimizerSetup.lr", 1e-3, 1e-2, log=sampler != "grid", step=1e-3 if sampler == "grid" else None),
        IntRange("SluTask.d_model", 32, 96, step=32),
    ]
    sweep = Sweep(space=space, sampler=sampler)
    study, storage, lock = _study(f"sqlite:///{tmp_path / 'study.db'}")
    for _ in range(4):
        got = claim(study, storage, lock, sweep, 0, n_trials=4)
        assert 1e-3 <= got.params["OptimizerSetup.lr"] <= 1e-2 and got.params["SluTask.d_model"] in (32, 64, 96)
        study.tell(got.trial, got.params["OptimizerSetup.lr"])


@pytest.mark.parametrize(("name", "prunes"), [("median", True), ("hyperband", True), ("none", False)])
def test_every_pruner_stops_a_worse_trial_after_warmup_only(name, prunes):
    from nestbench.sweep.samplers import make_pruner

    def verdicts(study, value: float) -> list[bool]:
        """Report ``value`` (a loss: lower is better) for epochs 0..2, asking the pruner after each."""
        trial = study.ask()
        out = []
        for epoch in range(3):
            trial.report(value, step=epoch)
            out.append(bool(trial.should_prune()))
        study.tell(trial, value)
        return out

    study = optuna.create_study(pruner=make_pruner(name, startup=1, warmup_epochs=2))
    for _ in range(2):  # finished trials: the first lets hyperband size its brackets, the second fills rung 0
        verdicts(study, 0.1)
    assert verdicts(study, 0.9) == [False, False, prunes]  # never inside the 2 warm-up epochs
    assert verdicts(study, 0.05) == [False, False, False]  # a better trial goes on
