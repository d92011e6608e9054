"""Crash safety and many workers, with real processes: a SIGKILLed sweep resumes to exactly N trials,
and sweep processes on two "machines" share one PostgreSQL study without running a trial twice."""

import signal
import subprocess
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from nestbench.results import ResultsStore
from nestbench.sweep.storage import normalise

pytestmark = pytest.mark.slow
STUDY = "quickstart_slurp_frozen-sweep"


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def _wait_for(predicate, timeout: float, what: str):
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = predicate()
        if got:
            return got
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def test_killed_sweep_resumes_to_exactly_n_trials(nestbench_cmd, sweep_spec, tiny_experiment, run_env, tmp_path):
    longer = tmp_path / "longer.gin"  # trials long enough to be killed in the middle of training
    longer.write_text(f"include '{tiny_experiment}'\nTrainerSetup.max_epochs = 40\n")
    spec = sweep_spec(extra="Sweep.pruner = 'none'", experiment=longer)
    # one trial at a time, so that trial #0 has finished when #1 is killed
    cmd = nestbench_cmd("sweep", spec, "--trials", "3", "--workers", "1", "--heartbeat", "1", "--wandb", "disabled")
    runs = tmp_path / "runs"
    url = f"sqlite:///{runs / 'sweeps' / STUDY / 'study.db'}"
    with open(tmp_path / "first.log", "w") as out:
        sweep = subprocess.Popen(cmd, env=run_env, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT)

        def second_trial_training():  # mid-trial: trial #1 has started training in its own process
            if not (runs / "sweeps" / STUDY / "trials" / "0001.log").exists():
                return None
            trials = optuna.load_study(study_name=STUDY, storage=url).trials
            running = [t for t in trials if t.number == 1 and t.state == TrialState.RUNNING]
            run_dir = running[0].user_attrs.get("run_dir") if running else None
            curves = Path(run_dir or "/nonexistent") / "csv" / "metrics.csv"
            return running[0] if curves.exists() and "dev/loss" in curves.read_text() else None

        try:
            killed = _wait_for(second_trial_training, 300, "trial #1 to start training")
        finally:
            sweep.send_signal(signal.SIGKILL)
            sweep.wait()
    _wait_for(lambda: not _alive(killed.user_attrs["pid"]), 20, "the orphaned trial process to die with its sweep")
    before = optuna.load_study(study_name=STUDY, storage=url).trials
    assert before[0].state == TrialState.COMPLETE and before[1].state == TrialState.RUNNING
    assert not (Path(killed.user_attrs["run_dir"]) / "metrics.json").exists()

    resumed = subprocess.run(cmd, env=run_env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "(re-run of #1)" in resumed.stdout

    trials = optuna.load_study(study_name=STUDY, storage=url).trials
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert len(complete) == 3 and [t.number for t in failed] == [1] and len(trials) == 4
    assert complete[0].number == 0 and complete[0].value == before[0].value  # finished work is kept
    (rerun,) = [t for t in trials if t.system_attrs.get("failed_trial") == 1]
    assert rerun.state == TrialState.COMPLETE and rerun.params == killed.params
    records = ResultsStore(runs / "results.jsonl").read()
    assert sorted(r["trial"] for r in records) == sorted(t.number for t in complete)


def test_two_machines_share_one_postgres_study(nestbench_cmd, nestbench, postgres_url, sweep_spec, run_env, tmp_path):
    spec = sweep_spec(extra="Sweep.pruner = 'none'")
    machines = {"a": ("--workers", "2"), "b": ("--workers", "1")}  # three trials at a time in all
    procs = {}
    for name, workers in machines.items():
        cmd = nestbench_cmd(
            "sweep",
            spec,
            "--trials",
            "5",
            "--storage",
            postgres_url,
            "--wandb",
            "disabled",
            "--runs-dir",
            tmp_path / name,
            *workers,
        )
        log = open(tmp_path / f"{name}.log", "w")  # noqa: SIM115 - closed below
        procs[name] = (subprocess.Popen(cmd, env=run_env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT), log)
    for name, (proc, log) in procs.items():
        assert proc.wait(timeout=600) == 0, (tmp_path / f"{name}.log").read_text()[-3000:]
        log.close()

    trials = optuna.load_study(study_name=STUDY, storage=normalise(postgres_url)).trials
    assert len(trials) == 5 and all(t.state == TrialState.COMPLETE for t in trials)  # N trials, none extra
    ran = {name: [r["trial"] for r in ResultsStore(tmp_path / name / "results.jsonl").read()] for name in machines}
    assert sorted(ran["a"] + ran["b"]) == [0, 1, 2, 3, 4]  # none twice, none lost
    assert ran["a"] and ran["b"]  # both machines worked on the study
    hosts_runs = {t.number: t.user_attrs["run_dir"] for t in trials}
    for name, numbers in ran.items():
        assert all(hosts_runs[n].startswith(str(tmp_path / name)) for n in numbers)

    status = nestbench("sweep", "--status", STUDY, "--storage", postgres_url, env=run_env, cwd=tmp_path)
    assert status.returncode == 0 and f"study {STUDY}: 5 trials (5 complete); target 5" in status.stdout
    for name in machines:  # each machine ends with the same table and its own best.gin
        assert (tmp_path / name / "sweeps" / STUDY / "best.gin").is_file()
