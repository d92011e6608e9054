"""``nestbench evaluate RUN_DIR``: a finished run's best checkpoint scored again, without training.

The run's own operative config (``config.gin``) is the spec, so the model is rebuilt exactly as it
was trained; ``--gin`` overrides may bind further test sets (``Experiment.extra_tests``), and then
only those are scored — this is how one model fills several columns of a card table (another
trial list, another test condition). Results go to ``<run>/evaluations/<stamp>/`` (``metrics.json``,
``predictions/``) and one record in the results store that says it evaluates that run.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from .lightning_setup import device_record
from .provenance import portable_path
from .rundir import new_run_dir
from .spec import load_spec


def evaluate_run(run_dir: str | Path, overrides=(), *, runs_dir: str | Path | None = None, progress: bool = True):
    from .evaluation import evaluate_sets
    from .runner import (
        RunResult,
        _record,
        cached_upstream,
        cpu_threads,
        load_data,
        preflight,
        save_record,
    )
    from .upstream import build_upstream

    run_dir = Path(run_dir)
    config = run_dir / "config.gin"
    best = _best_checkpoint(run_dir)
    runs = Path(runs_dir) if runs_dir else run_dir.parent.parent
    original = load_spec(config)
    spec = load_spec(config, overrides)  # a typo or a bad value fails here, before any work
    exp = spec.experiment
    new_sets = [k for k in exp.extra_tests if k not in original.experiment.extra_tests]
    started = time.time()
    preflight(exp)
    with cpu_threads(exp.trainer.cpu_threads):
        splits, entries = load_data(exp, runs)
        chosen = [s for s in splits.eval_sets if not new_sets or s.name in new_sets]
        exp.task.setup(entries["train"], run_dir)  # reloads what the run fitted (tokenizer, speaker list)
        feature_files = None
        if exp.encoder.uses_feature_cache:
            upstream, feature_files, _ = cached_upstream(exp, {s.name: entries[s.name] for s in chosen}, progress)
        else:
            upstream = build_upstream(exp.encoder)
        from .lit import TaskModule

        module = TaskModule(upstream, exp.task, exp.task.build_head(upstream.view), exp.optimizer, lambda: None)
        module.load_state_dict(torch.load(best, map_location="cpu", weights_only=True)["state_dict"])
        trainer = _precision_trainer(exp)
        module.to(trainer.strategy.root_device)
        out = new_run_dir(run_dir, "evaluations")
        metrics, _ = evaluate_sets(
            module, trainer.precision_plugin, chosen, entries, exp, upstream, feature_files, out / "predictions",
            progress=progress,
        )  # fmt: skip
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    original_record = _original_record(run_dir)
    record = {
        **_record(spec, exp, runs, out, metrics, splits, upstream, started, sets=chosen),
        "evaluation_of": run_dir.name,
        "evaluated_run_dir": portable_path(run_dir, root=runs),
        "best_checkpoint": portable_path(best, root=runs),
        "device": device_record(exp.trainer, trainer),
    }
    if original_record is not None:
        record["run_id"] = original_record.get("run_id", run_dir.name)
    save_record(runs, out, record)
    return RunResult(out, metrics, record)


def _best_checkpoint(run_dir: Path) -> Path:
    if not (run_dir / "config.gin").is_file():
        raise FileNotFoundError(f"{run_dir}: not a run folder (no config.gin)")
    if not (run_dir / "metrics.json").is_file():
        raise FileNotFoundError(f"{run_dir}: the run has not finished (no metrics.json); resume it first with --resume")
    for name in ("best.ckpt", "last.ckpt"):
        if (run_dir / "checkpoints" / name).is_file():
            return run_dir / "checkpoints" / name
    raise FileNotFoundError(f"{run_dir}/checkpoints: no best.ckpt or last.ckpt to evaluate")


def _original_record(run_dir: Path) -> dict | None:
    path = run_dir / "run.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _precision_trainer(exp):
    """A Lightning trainer that is never fitted: it gives the device and the training precision's context."""
    import lightning.pytorch as pl

    return pl.Trainer(
        accelerator=exp.trainer.accelerator,
        devices=1,
        precision=exp.trainer.precision,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
