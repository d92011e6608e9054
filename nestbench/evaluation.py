"""Loaders for training and evaluation, and scoring a model on named evaluation sets.

Shared by ``nestbench run`` (dev + every test set after training) and ``nestbench evaluate`` (a
finished run's best checkpoint on the spec's sets or on newly bound ones). Evaluation runs under
the training precision (the Lightning precision plugin's forward context), so the recorded dev
metric is the one that selected the checkpoint.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from .data import BucketBatchSampler, ExampleDataset, batch_to, make_collate
from .experiment import Experiment
from .task import EvalSet, Example, Stage

log = logging.getLogger(__name__)


def examples_of(task, entries: Sequence[dict], stage: Stage) -> list[Example]:
    """The task's examples for ``stage``, with ids unique across the set (one id, one example)."""
    out, seen = [], set()
    for e in entries:
        for ex in task.examples(e, stage):
            if ex.id in seen:
                raise ValueError(f"task '{task.name}' made two examples with id {ex.id!r} ({e['_source']})")
            seen.add(ex.id)
            out.append(ex)
    return out


def _loader(exp: Experiment, upstream, examples: list[Example], feature_files, *, shuffle: bool, shard: bool):
    t = exp.trainer
    if feature_files is None:
        enc = upstream.encoder
        ds = ExampleDataset(examples, exp.task, sample_rate=enc.sample_rate, min_samples=enc.min_samples, seed=exp.seed)
    else:
        ds = ExampleDataset(
            examples, exp.task, feature_files=feature_files, frame_shift=upstream.info.frame_shift, seed=exp.seed
        )
    sampler = BucketBatchSampler(
        [ex.seconds for ex in examples],
        t.batch_size,
        max_batch_duration=t.max_batch_duration,
        shuffle=shuffle,
        seed=exp.seed,
        # ``None``: read from the process group once DDP runs (training batches, and dev shards whose
        # evaluators merge); final evaluation runs on rank 0 alone over whole sets
        rank=None if shard else 0,
        world_size=None if shard else 1,
    )
    return DataLoader(ds, batch_sampler=sampler, collate_fn=make_collate(exp.task), num_workers=t.num_workers)


def train_loader(exp: Experiment, upstream, entries: Sequence[dict], feature_files=None) -> DataLoader:
    return _loader(exp, upstream, examples_of(exp.task, entries, "train"), feature_files, shuffle=True, shard=True)


def eval_loader(exp: Experiment, upstream, entries: Sequence[dict], feature_files=None, *, shard=False) -> DataLoader:
    return _loader(exp, upstream, examples_of(exp.task, entries, "eval"), feature_files, shuffle=False, shard=shard)


@torch.inference_mode()
def run_evaluator(module, loader: DataLoader, evaluator, precision=None, progress: bool = False, desc: str = ""):
    """Feed every batch of ``loader`` through ``module`` into ``evaluator`` (under ``precision``'s
    forward context when given, as Lightning does in validation)."""
    from contextlib import nullcontext

    from tqdm import tqdm

    module.eval()
    device = next(module.parameters()).device
    context = precision.forward_context() if precision is not None else nullcontext()
    with context:
        for batch in tqdm(loader, desc=desc, disable=not progress, leave=False):
            batch = batch_to(batch, device)
            feats, lengths = module.features(batch)
            evaluator.update(batch["examples"], module.task.infer(module.head, feats, lengths, batch["examples"]))
    return evaluator


def evaluate_sets(
    module,
    precision,
    sets: Sequence[EvalSet],
    entries: dict[str, list[dict]],
    exp: Experiment,
    upstream,
    feature_files,
    predictions_dir: Path,
    *,
    progress: bool = False,
) -> tuple[dict[str, dict], tuple[list[str], list[list]] | None]:
    """Metrics per set name, predictions written under ``predictions_dir/<set>/``, and a small
    (columns, rows) table of the first test set's predictions for W&B."""
    metrics, table = {}, None
    for s in sets:
        loader = eval_loader(exp, upstream, entries[s.name], feature_files)
        evaluator = run_evaluator(
            module, loader, exp.task.evaluator(s, entries[s.name]), precision, progress, desc=f"evaluate {s.name}"
        )
        metrics[s.name] = evaluator.compute()
        files = evaluator.write(predictions_dir / s.name)
        log.info("%s: %s (predictions: %s)", s.name, _brief(metrics[s.name]), ", ".join(f.name for f in files))
        if table is None and s.name != "dev" and hasattr(evaluator, "table"):
            table = evaluator.table()
    return metrics, table


def _brief(metrics: dict) -> str:
    return ", ".join(f"{k} {v:.4f}" for k, v in list(metrics.items())[:3] if isinstance(v, float))
