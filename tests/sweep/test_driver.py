"""How many trials a sweep runs side by side, and that it says so when it starts."""

import os

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial

from nestbench.sweep import driver
from nestbench.sweep.driver import SweepError, SweepOptions, auto_workers, prepare, run_sweep
from nestbench.sweep.plan import load_sweep


def test_auto_workers_one_per_usable_core_up_to_the_trials_left(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)  # a 2-core CPU set
    monkeypatch.setattr(os, "cpu_count", lambda: 64)  # the machine's count is not what this process may use
    assert [auto_workers(left) for left in (10, 2, 1, 0)] == [2, 2, 1, 1]


def test_auto_workers_without_sched_getaffinity(monkeypatch):
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    assert auto_workers(3) == 3 and auto_workers(10) == 4


def test_sweep_prints_its_workers_and_resolves_auto_on_the_trials_left(sweep_spec, tmp_path, monkeypatch):
    """A study that already has its verdicts: auto means one worker, whatever the cores; nothing runs."""
    monkeypatch.setattr(driver, "available_cores", lambda: 4)
    plan = load_sweep(sweep_spec())
    runs = tmp_path / "runs"
    (runs / "sweeps" / plan.study).mkdir(parents=True)
    storage = f"sqlite:///{runs / 'sweeps' / plan.study / 'study.db'}"
    study = optuna.create_study(study_name=plan.study, storage=storage, direction=plan.direction)
    distributions = {
        "OptimizerSetup.lr": FloatDistribution(1e-4, 1e-2, log=True),
        "SluTask.dropout": CategoricalDistribution([0.0, 0.1]),
    }
    for lr in (1e-3, 2e-3):
        params = {"OptimizerSetup.lr": lr, "SluTask.dropout": 0.0}
        study.add_trial(create_trial(state=TrialState.PRUNED, params=params, distributions=distributions))
    lines: list[str] = []
    outcome = run_sweep(plan, SweepOptions(trials=2, runs_dir=runs), echo=lines.append)
    assert "; workers: 1 (auto: 4 cores); " in lines[0] and outcome.best is None
    assert [t.state for t in optuna.load_study(study_name=plan.study, storage=storage).trials] == [
        TrialState.PRUNED
    ] * 2


@pytest.mark.parametrize("workers", [0, -1, "two"])
def test_python_api_refuses_bad_workers_before_anything_exists(sweep_spec, tmp_path, workers):
    with pytest.raises(SweepError, match="--workers must be 'auto' or a positive integer"):
        prepare(load_sweep(sweep_spec()), SweepOptions(trials=2, workers=workers, runs_dir=tmp_path / "runs"))
    assert not (tmp_path / "runs").exists()
