"""``run_sweep``: K worker loops, each claiming one trial at a time and running it as its own process.

The study is the only shared state, so any number of sweep processes (on any number of machines,
with PostgreSQL) cooperate on one study. A worker, under the study's claim lock, fails trials whose
heartbeat stopped (re-queuing them with their parameters), counts the trials that reached a verdict
plus those running, and asks for a new trial only while that sum is below the target: the study
ends with exactly N verdicts. A verdict is complete, pruned, or failed by the trial's own error;
a trial interrupted by a crash or Ctrl-C is run again instead of counted.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..fileio import file_lock
from .accounting import FINISHED, WAIT, Claim, claim, requeue, tally
from .launch import (
    PRUNED_AT,
    PRUNED_EXIT_CODE,
    RUN_DIR,
    TrialLaunch,
    build_launch,
    log_tail,
    nestbench_argv,
    run_launch,
    trial_overrides,
)
from .plan import SweepPlan
from .report import (
    DEFINITION,
    EXPERIMENT_SPEC,
    TARGET,
    best_trial,
    fmt_params,
    fmt_value,
    summary_table,
    write_best_gin,
    write_plots,
)
from .samplers import check_sampler_fits, grid_size, make_sampler
from .storage import ClaimLock, check_storage, default_storage, describe, normalise, open_storage, quiet_optuna


class SweepError(ValueError):
    """A sweep that cannot start or continue; the message says why."""


@dataclass(frozen=True)
class SweepOptions:
    trials: int
    workers: int | str = "auto"  # trials side by side in this process; 'auto': see `auto_workers`
    storage: str | None = None
    study: str | None = None
    runs_dir: Path = Path("runs")
    heartbeat: int = 10  # seconds; a trial silent for 3 heartbeats is failed and re-queued
    wandb: str | None = None


@dataclass
class SweepOutcome:
    study: str
    storage: str
    folder: Path
    table: str
    best: object | None  # optuna FrozenTrial
    files: list[Path] = field(default_factory=list)
    interrupted: bool = False


def prepare(plan: SweepPlan, options: SweepOptions) -> tuple[str, str]:
    """Everything that can be refused is refused here, before any folder or study exists."""
    if options.trials < 1:
        raise SweepError("--trials must be at least 1")
    if options.workers != "auto" and (not isinstance(options.workers, int) or options.workers < 1):
        raise SweepError(f"--workers must be 'auto' or a positive integer, not {options.workers!r}")
    if options.heartbeat < 1:
        raise SweepError("--heartbeat must be at least 1 second")
    try:
        check_sampler_fits(plan.sweep)
    except ValueError as err:
        raise SweepError(f"{plan.spec}: {err}") from None
    study = options.study or plan.study
    url = normalise(options.storage) if options.storage else default_storage(Path(options.runs_dir), study)
    check_storage(url)
    return study, url


def run_sweep(plan: SweepPlan, options: SweepOptions, echo=print) -> SweepOutcome:
    quiet_optuna()
    name, url = prepare(plan, options)
    runs = Path(options.runs_dir).resolve()
    folder = runs / "sweeps" / name
    folder.mkdir(parents=True, exist_ok=True)
    storage = open_storage(url, heartbeat=options.heartbeat, max_retries=plan.sweep.max_retries)
    n_trials = options.trials
    if plan.sweep.sampler == "grid" and n_trials > grid_size(plan.sweep.space):
        n_trials = grid_size(plan.sweep.space)
        echo(f"grid has {n_trials} points: running {n_trials} trials")
    study = _open_study(plan, storage, name, n_trials)
    workers = options.workers
    if workers == "auto":
        workers = auto_workers(n_trials - tally(study.get_trials(deepcopy=False))[0])
        shown = f"{workers} (auto: {available_cores()} cores)"
    else:
        shown = str(workers)
    options = replace(options, workers=workers)
    echo(
        f"sweep {name}: {n_trials} trials of {plan.experiment_spec} on {describe(url)}; "
        f"workers: {shown}; objective {plan.objective} ({plan.direction})"
    )
    loop = _Workers(plan, options, study, storage, ClaimLock(url, name), runs, folder, n_trials, echo)
    interrupted = loop.run()
    table = summary_table(study, plan.objective, [p.binding for p in plan.sweep.space])
    (folder / "summary.txt").write_text(table + "\n", encoding="utf-8")
    best = best_trial(study)
    files = [folder / "summary.txt"]
    if best is not None:
        files.append(
            write_best_gin(
                folder / "best.gin",
                study=study,
                trial=best,
                experiment_spec=str(plan.experiment_spec),
                objective=plan.objective,
                storage=describe(url),
            )
        )
    files += write_plots(study, folder)
    return SweepOutcome(name, describe(url), folder, table, best, files, interrupted)


def available_cores() -> int:
    """The cores this process may use: a batch job's CPU set, not the whole machine's count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # no sched_getaffinity (macOS, Windows)
        return os.cpu_count() or 1


def auto_workers(trials_left: int) -> int:
    """One trial per core, no more than the trials left: trials side by side, each on its share of the
    cores, finish a sweep sooner than one trial on all of them (small heads use one core better than two)."""
    return max(1, min(available_cores(), trials_left))


def _open_study(plan: SweepPlan, storage, name: str, n_trials: int):
    import optuna

    study = optuna.create_study(
        study_name=name,
        storage=storage,
        direction=plan.direction,
        load_if_exists=True,
        sampler=make_sampler(plan.sweep, n_trials, 0),
    )
    definition = plan.definition()
    stored = study.user_attrs.get(DEFINITION)
    if stored is None:
        study.set_user_attr(DEFINITION, definition)
        study.set_user_attr(EXPERIMENT_SPEC, str(plan.experiment_spec))
    elif json.dumps(stored, sort_keys=True) != json.dumps(definition, sort_keys=True):
        differ = sorted(k for k in definition.keys() | stored.keys() if stored.get(k) != definition.get(k))
        raise SweepError(
            f"study '{name}' already exists with a different sweep ({', '.join(differ)} differ); "
            "continue it with the same sweep spec, or start a new study with --study NAME"
        )
    study.set_user_attr(TARGET, max(n_trials, int(study.user_attrs.get(TARGET, 0))))
    return study


class _Heartbeat:
    """Tells the storage this trial's worker is alive; when it stops (the sweep was killed), another
    worker fails the trial after the grace period and re-queues it."""

    def __init__(self, storage, trial_id: int, interval: float):
        self.storage, self.trial_id, self.interval = storage, trial_id, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True)

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            with contextlib.suppress(Exception):  # a missed beat is retried next interval
                self.storage.record_heartbeat(self.trial_id)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


class _Workers:
    def __init__(self, plan, options, study, storage, lock, runs, folder, n_trials, echo):
        import optuna
        from optuna.samplers import RandomSampler

        self.plan, self.options, self.study, self.storage, self.lock = plan, options, study, storage, lock
        self.runs, self.folder, self.n_trials, self.echo = runs, folder, n_trials, echo
        # Verdicts go through a second handle on the study whose sampler does nothing on `tell`: the
        # claiming handle's sampler changes with every claim (and the grid sampler's would stop the study).
        self.ledger = optuna.load_study(study_name=study.study_name, storage=storage, sampler=RandomSampler())
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.processes: dict[int, object] = {}  # trial number -> its process, while it runs
        self.guard = threading.Lock()
        self.threads = max(1, available_cores() // options.workers) if options.workers > 1 else None
        self.pruner = {"name": plan.sweep.pruner, "startup": plan.sweep.prune_after, "warmup": plan.sweep.warmup_epochs}

    # -- the loop ---------------------------------------------------------------------------------
    def run(self) -> bool:
        """Prepare, then K worker threads; ``True`` when Ctrl-C stopped it (running trials are re-run on resume)."""
        try:
            self._prepare()
        except KeyboardInterrupt:
            self._stop_all("interrupted while preparing; no trial was started")
            return True
        threads = [threading.Thread(target=self._worker, args=(i,), daemon=True) for i in range(self.options.workers)]
        for t in threads:
            t.start()
        try:
            for t in threads:
                while t.is_alive():
                    t.join(0.5)
        except KeyboardInterrupt:
            self._stop_all("interrupted: stopping running trials (they will be re-run when the sweep is resumed)")
            for t in threads:
                t.join()
            return True
        if self.errors:
            raise self.errors[0]
        return False

    def _stop_all(self, why: str) -> None:
        self.echo(why)
        self.stop.set()
        with self.guard:
            for proc in self.processes.values():
                proc.terminate()

    def _worker(self, index: int) -> None:
        try:
            self._loop()
        except BaseException as err:  # a broken worker stops the sweep; its trial is re-run on resume
            self.errors.append(err)
            self.stop.set()

    def _prepare(self) -> None:
        """Data and the frozen encoder's feature cache, once, with every core, before any trial: trials
        side by side would otherwise each compute them on their share of the cores (the cache is safe
        under concurrent writers, but the work would be done K times)."""
        done = tally(self.ledger.get_trials(deepcopy=False))[0]
        if done >= self.n_trials:
            return
        log = self.folder / "prepare.log"
        argv = nestbench_argv("prepare", self.plan.experiment_spec, "--runs-dir", self.runs, "--quiet")
        launch = TrialLaunch(argv, {**os.environ}, log)
        launch.env.pop("NESTBENCH_TRIAL", None)
        started = time.time()
        with file_lock(self.runs / ".sweep-prepare.lock", self.stop):  # one preparer per runs folder
            self.echo(f"preparing data and features for all trials (log: {log})")
            code = run_launch(launch, started=self._track_prepare)
        with self.guard:
            self.processes.pop(-1, None)
        if code != 0:
            spec = self.plan.experiment_spec
            raise SweepError(f"preparing {spec} failed (exit {code}); end of {log}:\n{log_tail(log)}")
        self.echo(f"prepared in {time.time() - started:.0f}s: {_prepared(log_tail(log))}")

    def _track_prepare(self, proc) -> None:
        with self.guard:
            self.processes[-1] = proc

    def _loop(self) -> None:
        """Claim and run trials until the study has its verdicts."""
        poll = min(2.0, self.options.heartbeat)
        while not self.stop.is_set():
            claimed = claim(
                self.study, self.storage, self.lock, self.plan.sweep, self.plan.experiment.seed, self.n_trials
            )
            if claimed == FINISHED:
                return
            if claimed == WAIT:  # the rest are running elsewhere; stay to re-run any that die
                self.stop.wait(poll)
                continue
            self._run(claimed)

    # -- one trial ----------------------------------------------------------------------------------
    def _run(self, claim: Claim) -> None:
        from optuna.trial import TrialState

        trial, number, retried = claim.trial, claim.trial.number, claim.rerun_of
        self.echo(
            f"trial #{number} started{f' (re-run of #{retried})' if retried is not None else ''}: "
            f"{fmt_params(claim.params)}"
        )
        info = {
            "storage": self.storage.url,
            "study": self.study.study_name,
            "trial_id": trial._trial_id,
            "number": number,
            "objective": self.plan.objective,
            "prune_on": self.plan.prune_on,
            "prune_sign": self.plan.prune_sign,
            "params": claim.params,
            "pruner": self.pruner,
        }
        log = self.folder / "trials" / f"{number:04d}.log"
        launch = build_launch(
            experiment_spec=self.plan.experiment_spec,
            overrides=trial_overrides(claim.params, claim.seed, self.study.study_name),
            runs=self.runs,
            info=info,
            log=log,
            wandb=self.options.wandb,
            threads=self.threads,
        )
        started = time.time()
        with _Heartbeat(self.storage, trial._trial_id, self.options.heartbeat):
            code = run_launch(launch, started=lambda proc: self._track(trial, proc))
        with self.guard:
            self.processes.pop(number, None)
        state, value, error = self._verdict(trial._trial_id, code, log)
        if state is None:  # interrupted by the user: re-queue rather than count
            requeue(self.ledger, trial, "interrupted", self.plan.sweep.max_retries)
            return
        if error:
            trial.set_user_attr("error", error)
        self.ledger.tell(number, value if state == TrialState.COMPLETE else None, state=state, skip_if_finished=True)
        self._progress(number, claim.params, state, value, error, time.time() - started)

    def _track(self, trial, proc) -> None:
        trial.set_user_attr("pid", proc.pid)
        with self.guard:
            self.processes[trial.number] = proc
            if self.stop.is_set():
                proc.terminate()

    def _verdict(self, trial_id: int, code: int, log: Path):
        from optuna.trial import TrialState

        attrs = self.storage.get_trial(trial_id).user_attrs
        if code == PRUNED_EXIT_CODE or attrs.get(PRUNED_AT) is not None:
            return TrialState.PRUNED, None, None
        if self.stop.is_set() and code != 0:
            return None, None, None
        if code != 0:
            return TrialState.FAIL, None, f"exit code {code}; end of {log}:\n{log_tail(log)}"
        run_dir = attrs.get(RUN_DIR)
        metrics = Path(run_dir) / "metrics.json" if run_dir else None
        if metrics is None or not metrics.is_file():
            return TrialState.FAIL, None, f"the run wrote no metrics.json (run folder {run_dir}); see {log}"
        value = json.loads(metrics.read_text(encoding="utf-8")).get("dev", {}).get(self.plan.metric)
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            return TrialState.FAIL, None, f"{self.plan.objective} is {value!r} (not a finite number); see {log}"
        return TrialState.COMPLETE, float(value), None

    def _progress(self, number: int, params: dict, state, value, error, seconds: float) -> None:
        done, running = tally(self.ledger.get_trials(deepcopy=False))
        best = best_trial(self.ledger)
        shown = f"{self.plan.objective}={fmt_value(value)}" if value is not None else ""
        best_txt = f"best #{best.number} {fmt_value(best.value)}" if best is not None else "best -"
        line = (
            f"trial {done}/{self.n_trials}  #{number} {state.name:<8} {shown}  {fmt_params(params)}  "
            f"{seconds:.0f}s  {best_txt}"
        )
        if error:
            line += f"\n  error: {error.strip().splitlines()[-1] if error.strip() else error}"
        self.echo(line)


def _prepared(output: str) -> str:
    """``nestbench prepare``'s JSON summary line, for people."""
    try:
        summary = json.loads(output.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return "done"
    text = f"{sum(summary.get('utterances', {}).values())} utterances"
    cache = summary.get("feature_cache")
    if cache:
        text += f", features {cache['hits']} cached + {cache['computed']} computed"
    return text
