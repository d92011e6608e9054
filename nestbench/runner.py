"""``nestbench run``: one experiment from spec to trusted, reproducible result. Reads top-down.

Run folder ``<runs>/<experiment>/<run-id>/``:
  ``config.gin`` operative config · ``run.json`` provenance · ``run.log`` · ``csv/metrics.csv`` curves
  ``checkpoints/{best,last}.ckpt`` · ``predictions/{dev,test}.*`` in the task's native format
  ``metrics.json`` final dev + test metrics · ``wandb/`` offline W&B run (unless disabled)
  ``layer_weights.{json,png}`` the learned layer weights of a frozen encoder ('superb'/'nemo' aggregation)
and one record appended to ``<runs>/results.jsonl``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from .data import cache_utterances, data_fingerprint, read_entries
from .evaluation import eval_loader, evaluate_sets, train_loader
from .experiment import Experiment
from .launch import current_launch, run_folder
from .layer_profile import layer_profile, write_layer_profile
from .lightning_setup import (
    checkpoint_callbacks,
    device_record,
    make_trainer,
    one_lightning_log_stream,
    run_loggers,
    write_or_check_config,
)
from .provenance import portable_path, run_provenance
from .results import ResultsStore
from .rundir import find_resumable, new_run_dir
from .spec import LoadedSpec
from .task import DataSplits, headline
from .threads import torch_threads as cpu_threads
from .tracking import finish_tracking
from .upstream import build_cached_upstream, build_upstream, init_kind

log = logging.getLogger(__name__)

RESULTS_FILE = "results.jsonl"


@dataclass
class RunResult:
    run_dir: Path
    metrics: dict
    record: dict


def default_runs_dir(runs_dir: str | Path | None = None) -> Path:
    return Path(runs_dir or os.environ.get("NESTBENCH_RUNS") or "runs")


def run_experiment(
    spec: LoadedSpec,
    *,
    runs_dir: str | Path | None = None,
    resume: str | Path | bool | None = None,
    wandb: str | None = None,
    progress: bool = True,
    callbacks: Sequence = (),
    record_extra: dict | None = None,
) -> RunResult:
    """Train and evaluate ``spec``. ``callbacks`` are extra Lightning callbacks (a sweep's pruning
    reporter); ``record_extra`` is merged into the results record (study name, trial number)."""
    exp: Experiment = spec.experiment
    runs = default_runs_dir(runs_dir)
    started = time.time()

    # 1. fail fast: data and checkpoint must be reachable before any work
    preflight(exp)

    # 2. run folder: new (never overwriting) or the one being resumed, made by global rank 0 alone;
    #    every other rank (Lightning's re-launched DDP ranks, torchrun's or SLURM's) joins it (launch.py)
    prepare = lambda: prepare_experiment(spec, runs_dir=runs, progress=progress)  # noqa: E731
    with rank_run_folder(runs, exp.name, resume, prepare, exp.trainer.cpu_threads) as run_dir:
        return _run_in(spec, exp, runs, run_dir, wandb, progress, started, list(callbacks), record_extra or {})


@contextlib.contextmanager
def rank_run_folder(runs: Path, name: str, resume, prepare: Callable[[], object], threads: int | None):
    """This rank's run folder (``launch.run_folder``), with its CPU threads and its log file, while the
    block runs. Ranks started together (torchrun, SLURM) must not build the same files at once, so rank 0
    calls ``prepare`` (data, feature cache) before it publishes the folder; the others then find it done."""
    launch = current_launch()

    def make_run_dir() -> Path:
        if launch.world_size > 1:
            prepare()
        return _run_dir(runs, name, resume)

    with (
        run_folder(launch, make_run_dir, runs) as run_dir,
        cpu_threads(threads),
        _log_to_file(run_dir / launch.log_name),
    ):
        log.info("%s", launch)
        yield run_dir


def _run_in(
    spec: LoadedSpec,
    exp: Experiment,
    runs: Path,
    run_dir: Path,
    wandb,
    progress: bool,
    started: float,
    callbacks: list,
    record_extra: dict,
) -> RunResult:
    write_or_check_config(run_dir / "config.gin", spec.operative_config)
    log.info("run folder %s", run_dir)

    # 3. data: prepared once (cached beside the runs), then the task fits what depends on it
    import lightning.pytorch as pl

    one_lightning_log_stream()
    pl.seed_everything(exp.seed, workers=True)
    splits, entries = load_data(exp, runs)
    exp.task.setup(entries["train"], run_dir)

    # 4. model: upstream (NEST + layer aggregation) and the task's head. A frozen encoder runs once,
    #    into the feature cache, and every set then reads its layers from there (feature_cache.py)
    feature_files, cache_stats = None, None
    if exp.encoder.uses_feature_cache:
        upstream, feature_files, cache_stats = cached_upstream(exp, entries, progress)
    else:
        upstream = build_upstream(exp.encoder)
    head = exp.task.build_head(upstream.view)
    from .lit import TaskModule

    module = TaskModule(
        upstream,
        exp.task,
        head,
        exp.optimizer,
        lambda: exp.task.evaluator(splits.dev, entries["dev"]),
        seed=exp.seed,
    )
    train = train_loader(exp, upstream, entries["train"], feature_files)
    # dev during training: each DDP rank scores a shard and the evaluators merge (lit.py)
    dev = eval_loader(exp, upstream, entries["dev"], feature_files, shard=True)

    # 5. train with Lightning (checkpoints at validation: best by the dev headline metric + last)
    loggers, wandb_logger = run_loggers(spec, exp, run_dir, wandb)
    metric = headline(exp.task)
    best_cb, last_cb = checkpoint_callbacks(run_dir, f"dev/{metric.name}", metric.direction)
    trainer = make_trainer(exp.trainer, run_dir, loggers, [best_cb, last_cb, *callbacks], progress=progress)
    last = run_dir / "checkpoints" / "last.ckpt"
    trainer.fit(module, train, dev, ckpt_path=str(last) if last.exists() else None)
    if trainer.global_rank != 0:  # DDP: the other ranks only train; rank 0 evaluates and records
        return RunResult(run_dir, {}, {})

    # 6. evaluate the best checkpoint on dev and every test set, under the training precision;
    #    predictions in the field's native format under predictions/<set>/
    best = best_cb.best_model_path or str(last)
    module.load_state_dict(torch.load(best, map_location="cpu", weights_only=True)["state_dict"])
    module.to(trainer.strategy.root_device)
    metrics, table = evaluate_sets(
        module, trainer.precision_plugin, splits.eval_sets, entries, exp, upstream, feature_files,
        run_dir / "predictions", progress=progress,
    )  # fmt: skip
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    layer_weights = layer_profile(upstream)  # the best checkpoint's learned layer mix (frozen runs)
    if layer_weights is not None:
        write_layer_profile(layer_weights, run_dir, f"{exp.name} ({exp.task.name})")

    # 7. provenance record in the results store
    record = {
        **_record(spec, exp, runs, run_dir, metrics, splits, upstream, started),
        "layer_weights": layer_weights,
        "best_checkpoint": portable_path(best, root=runs),
        "epochs": trainer.current_epoch,
        "steps": trainer.global_step,
        "device": device_record(exp.trainer, trainer),
        "feature_cache": cache_stats.as_record() if cache_stats is not None else None,
        **record_extra,
    }
    save_record(runs, run_dir, record)
    finish_tracking(wandb_logger, metrics, table)
    return RunResult(run_dir, metrics, record)


def save_record(runs: Path, run_dir: Path, record: dict) -> None:
    """One result: appended to the runs folder's results store, and as ``run.json`` in its run folder."""
    ResultsStore(runs / RESULTS_FILE).append(record)
    (run_dir / "run.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def prepare_experiment(spec: LoadedSpec, *, runs_dir: str | Path | None = None, progress: bool = True) -> dict:
    """Everything of a run that later runs reuse, without training: the prepared data and, for a
    frozen encoder, the feature cache. A sweep does this once, with every core, before its trials."""
    exp: Experiment = spec.experiment
    preflight(exp)
    runs = default_runs_dir(runs_dir)
    with cpu_threads(exp.trainer.cpu_threads):
        _, entries = load_data(exp, runs)
        stats = cached_upstream(exp, entries, progress)[2] if exp.encoder.uses_feature_cache else None
    return {
        "experiment": exp.name,
        "utterances": {split: len(es) for split, es in entries.items()},
        "feature_cache": stats.as_record() if stats is not None else None,
    }


def load_data(exp: Experiment, runs: Path) -> tuple[DataSplits, dict[str, list[dict]]]:
    """The prepared splits (plus the spec's ``Experiment.extra_tests``) and every set's entries by name."""
    splits = exp.task.prepare_data(exp.data, runs / "_data")
    extra = exp.extra_eval_sets()
    if extra:
        splits = DataSplits(splits.train, splits.dev, (*splits.tests, *extra))
    entries = {"train": [e for m in splits.train for e in read_entries(m)]}
    for s in splits.eval_sets:
        entries[s.name] = read_entries(s.manifest)
    return splits, entries


def cached_upstream(exp: Experiment, entries: dict[str, list[dict]], progress: bool):
    """The frozen upstream over cached layers (computing the missing ones), the feature file of every
    entry (by entry id, across sets) and the cache's hit/miss counts."""
    everything = [e for es in entries.values() for e in es]
    todo = cache_utterances(everything)
    upstream, cache, stats = build_cached_upstream(
        exp.encoder,
        todo,
        seed=exp.seed,
        device=_fill_device(exp.trainer.accelerator),
        batch_size=max(8, exp.trainer.batch_size or 8),
        progress=progress,
    )
    files = {e["id"]: cache.file(u.utt_id) for e, (_, u) in zip(everything, todo, strict=True)}
    return upstream, files, stats


class PreflightError(RuntimeError):
    """Something a run needs is missing; the message says what to download and where."""


def preflight(exp: Experiment) -> None:
    from .checkpoint import checkpoint_status, resolve_checkpoint

    problems = list(exp.task.check_data(exp.data))
    local, missing = checkpoint_status(exp.encoder.checkpoint, exp.encoder.cache_dir)
    if missing and (problems or not _looks_like_hub_id(exp.encoder.checkpoint)):
        problems.append(missing)
    if problems:
        raise PreflightError(f"experiment '{exp.name}' cannot start:\n  - " + "\n  - ".join(problems))
    if local is None:
        resolve_checkpoint(exp.encoder.checkpoint, exp.encoder.cache_dir)  # downloads, or says where to put it


def _looks_like_hub_id(source: str) -> bool:
    from .checkpoint.hub import is_hub_id

    return is_hub_id(str(source))


def _run_dir(runs: Path, name: str, resume) -> Path:
    if resume in (None, False):
        return new_run_dir(runs, name)
    if resume is True:
        found = find_resumable(runs, name)
        if found is None:
            raise FileNotFoundError(f"--resume: no unfinished run of '{name}' under {runs}")
        return found
    path = Path(resume)
    if not (path / "config.gin").exists():
        raise FileNotFoundError(f"--resume {path}: not a run folder (no config.gin)")
    return path


def _fill_device(accelerator: str) -> str:
    """Where the feature cache is filled: the GPU the run trains on, if any (its own under DDP)."""
    if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
    return "cpu"


def _record(
    spec: LoadedSpec, exp: Experiment, runs: Path, run_dir: Path, metrics: dict, splits, upstream, started, sets=None
):
    """Provenance and metrics of one result (on ``sets``, default all of ``splits``' evaluation
    sets); every path in it is relative to the runs folder."""
    return {
        **run_provenance(spec, exp.name, exp.seed, exp.optimizer, runs, run_dir, started),
        "task": exp.task.name,
        "convention": exp.task.convention(exp.data),
        "board": exp.board,
        "metrics": metrics,
        "sets": {s.name: {"manifest": s.manifest.name, **s.info} for s in (sets or splits.eval_sets)},
        "encoder": {
            "checkpoint": portable_path(exp.encoder.checkpoint),
            "sha256": upstream.info.checkpoint_sha256,
            "mode": exp.encoder.mode,
            "init": init_kind(exp.encoder),
            "aggregation": exp.encoder.aggregation if exp.encoder.mode == "frozen" else None,
            "n_layers": upstream.info.n_layers,
            "d_model": upstream.info.d_model,
        },
        "data_fingerprint": data_fingerprint(splits.all_manifests()),
    }


@contextlib.contextmanager
def _log_to_file(path: Path):
    """Everything nestbench and Lightning log during the run also goes to ``run.log``."""
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    targets = [logging.getLogger()]
    for t in targets:
        t.addHandler(handler)
    try:
        yield
    finally:
        for t in targets:
            t.removeHandler(handler)
        handler.close()
