"""`nestbench sweep` end to end on the tiny quickstart: real trial processes, real study, real runs."""

import csv
import json
import re
from pathlib import Path

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial

from nestbench.results import ResultsStore

pytestmark = pytest.mark.slow
STUDY = "quickstart_slurp_frozen-sweep"


def _study(runs: Path, name: str = STUDY):
    return optuna.load_study(study_name=name, storage=f"sqlite:///{runs / 'sweeps' / name / 'study.db'}")


def _dev_losses(run_dir: Path) -> list[str]:
    with open(run_dir / "csv" / "metrics.csv", newline="") as f:
        return [r["dev/loss"] for r in csv.DictReader(f) if r.get("dev/loss")]


def test_sweep_writes_table_best_gin_plots_and_records(nestbench, sweep_spec, run_env, tmp_path):
    spec = sweep_spec(extra="Sweep.pruner = 'none'")
    proc = nestbench("sweep", spec, "--trials", "3", "--wandb", "disabled", env=run_env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    # data and features were prepared once, before any trial (16 + 8 + 8 utterances)
    assert re.search(r"prepared in \d+s: 32 utterances, features 0 cached \+ 32 computed\ntrial #0 started", out)
    for n in (1, 2, 3):
        assert f"trial {n}/3  #" in out  # the live line: n/N, trial, state, metric, params
    assert "COMPLETE dev/intent_acc=" in out and "OptimizerSetup.lr=" in out
    assert "trial  state     dev/intent_acc  lr" in out and "best: trial #" in out

    runs = tmp_path / "runs"
    folder = runs / "sweeps" / STUDY
    for name in ("study.db", "summary.txt", "best.gin", "history.png", "importances.png", "parallel.png"):
        assert (folder / name).is_file(), name
    assert sorted(p.name for p in (folder / "trials").iterdir()) == ["0000.log", "0001.log", "0002.log"]

    study = _study(runs)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 3
    records = {r["trial"]: r for r in ResultsStore(runs / "results.jsonl").read()}
    assert sorted(records) == [0, 1, 2]
    for t in study.trials:  # every trial is a normal run, findable and replayable from its record
        record = records[t.number]
        assert record["study"] == STUDY and record["sweep_params"] == t.params
        assert record["metrics"]["dev"]["intent_acc"] == t.value
        assert "Experiment.seed = 42" in record["overrides"]
        assert f"TrackingSetup.group = '{STUDY}'" in record["overrides"]  # W&B runs grouped by study
        assert f"OptimizerSetup.lr = {t.params['OptimizerSetup.lr']!r}" in record["overrides"]
        assert not Path(record["run_dir"]).is_absolute()  # records travel: relative to the runs folder
        assert (runs / record["run_dir"]).resolve() == Path(t.user_attrs["run_dir"]).resolve()

    # best.gin is runnable as is and reproduces the best trial (its whole dev curve, not only the score)
    best = study.best_trial
    best_gin = (folder / "best.gin").read_text()
    assert f"trial #{best.number}" in best_gin
    assert f"TrainerSetup.cpu_threads = {best.user_attrs['threads']}" in best_gin  # CPU results depend on it
    replay = nestbench(
        "run",
        folder / "best.gin",
        "--runs-dir",
        tmp_path / "replay",
        "--wandb",
        "disabled",
        "--quiet",
        env=run_env,
        cwd=tmp_path,
    )
    assert replay.returncode == 0, replay.stderr[-3000:]
    (again,) = ResultsStore(tmp_path / "replay" / "results.jsonl").read()
    assert again["metrics"]["dev"] == records[best.number]["metrics"]["dev"]
    # The same training: equal metrics, and the same dev-loss curve up to float32 summation order. A logged
    # loss is a vectorised sum whose split into SIMD lanes can follow the tensor's address, so two processes
    # can differ in its last bits (seen: 5.0982704 vs 5.0982709) while every gradient, and so every later
    # step, is identical; a changed model or schedule moves it by far more than 1e-6.
    replayed = [float(x) for x in _dev_losses(tmp_path / "replay" / again["run_dir"])]
    original = [float(x) for x in _dev_losses(runs / records[best.number]["run_dir"])]
    assert replayed == pytest.approx(original, rel=1e-6, abs=0)

    status = nestbench("sweep", "--status", STUDY, env=run_env, cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    assert f"study {STUDY}: 3 trials (3 complete); target 3" in status.stdout
    assert f"best: #{best.number} dev/intent_acc" in status.stdout


def test_failing_trials_are_recorded_and_the_sweep_goes_on(nestbench, sweep_spec, run_env, tmp_path):
    spec = sweep_spec(
        "Experiment.notes = {'sweep': @Sweep()}\n"
        "Sweep.sampler = 'grid'\nSweep.pruner = 'none'\n"
        "Sweep.space = [@layers/Categorical(), @lr/Categorical()]\n"
        "layers/Categorical.binding = 'EncoderSetup.layers'\n"
        # well-formed, so the plan accepts it, but the 1-layer encoder has no layer 5: the trial fails
        "layers/Categorical.choices = ['all', '0,5']\n"
        "lr/Categorical.binding = 'OptimizerSetup.lr'\n"
        "lr/Categorical.choices = [0.003, 1e30]\n"  # 1e30 drives the loss to inf/NaN
    )
    proc = nestbench("sweep", spec, "--trials", "4", "--wandb", "disabled", env=run_env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    study = _study(tmp_path / "runs")
    by_params = {(t.params["EncoderSetup.layers"], t.params["OptimizerSetup.lr"]): t for t in study.trials}
    assert len(study.trials) == 4 and by_params[("all", 0.003)].state == TrialState.COMPLETE
    assert "the model has 1 layers" in by_params[("0,5", 0.003)].user_attrs["error"]
    assert "non-finite training loss" in by_params[("all", 1e30)].user_attrs["error"]
    assert by_params[("0,5", 1e30)].state == TrialState.FAIL
    assert len(re.findall(r"#\d+ FAIL ", proc.stdout)) == 3 and proc.stdout.count("  error: ") == 3
    assert len(ResultsStore(tmp_path / "runs" / "results.jsonl").read()) == 1  # failures write no record


@pytest.mark.parametrize(
    ("prune_on", "perfect"),
    [("", 1.0), ("Sweep.prune_on = 'dev/loss'", -1e-3)],  # dev loss goes to the study negated
    ids=["objective", "dev_loss"],
)
def test_pruned_trial_stops_early_and_is_marked_pruned(nestbench, sweep_spec, run_env, tmp_path, prune_on, perfect):
    spec = sweep_spec(extra=f"Sweep.prune_after = 1\nSweep.pruner = 'median'\n{prune_on}")
    args = ("sweep", spec, "--wandb", "disabled")
    first = nestbench(*args, "--trials", "1", env=run_env, cwd=tmp_path)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]

    # a finished trial that scored perfectly at every validation: the next trial is below the median
    study = _study(tmp_path / "runs")
    study.add_trial(
        create_trial(
            value=1.0,
            params={"OptimizerSetup.lr": 1e-3, "SluTask.dropout": 0.0},
            distributions={
                "OptimizerSetup.lr": FloatDistribution(1e-4, 1e-2, log=True),
                "SluTask.dropout": CategoricalDistribution([0.0, 0.1]),
            },
            intermediate_values={0: perfect, 1: perfect},
            user_attrs={"seed": 42},
        )
    )
    second = nestbench(*args, "--trials", "3", env=run_env, cwd=tmp_path)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    pruned = _study(tmp_path / "runs").trials[2]
    assert pruned.state == TrialState.PRUNED and pruned.user_attrs["pruned_at_epoch"] == 0
    assert "#2 PRUNED" in second.stdout
    watched = "dev/loss" if prune_on else "dev/intent_acc"
    reported = pruned.intermediate_values[0]
    assert f"({watched}={abs(reported):.4g} at epoch 0)" in second.stdout  # the table shows what the pruner saw
    if prune_on:
        curves = Path(pruned.user_attrs["run_dir"]) / "csv" / "metrics.csv"
        assert -reported == pytest.approx(float(_dev_losses(curves.parent.parent)[0]), rel=1e-5)
    log = (tmp_path / "runs" / "sweeps" / STUDY / "trials" / "0002.log").read_text()
    assert "pruned by the sweep" in log and "Traceback" not in log  # a clean exit, not a crash
    records = ResultsStore(tmp_path / "runs" / "results.jsonl").read()
    assert [r["trial"] for r in records] == [0]  # a pruned run is not a finished run
    assert not json.loads(json.dumps(pruned.user_attrs)).get("error")


def test_python_api_runs_the_same_sweep(sweep_spec, tmp_path, monkeypatch):
    """What a notebook does: plan, run, read the outcome (trials are still their own processes)."""
    from nestbench.sweep import SweepOptions, load_sweep, run_sweep

    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.delenv("NESTBENCH_TRIAL", raising=False)
    lines: list[str] = []
    plan = load_sweep(sweep_spec(extra="Sweep.pruner = 'none'"))
    outcome = run_sweep(plan, SweepOptions(trials=2, runs_dir=tmp_path / "runs", wandb="disabled"), echo=lines.append)
    assert not outcome.interrupted and outcome.best is not None
    assert [t.state for t in _study(tmp_path / "runs").trials] == [TrialState.COMPLETE] * 2
    assert (
        outcome.folder / "best.gin" in outcome.files
        and (outcome.folder / "summary.txt").read_text() == outcome.table + "\n"
    )
    assert sum(line.startswith("trial ") and "COMPLETE" in line for line in lines) == 2
