"""``nestbench pretrain``: NEST self-supervised pretraining from a spec. Reads top-down.

Run folder ``<runs>/<experiment>/<run-id>/``, as ``nestbench run`` makes it:
  ``config.gin`` operative config · ``run.json`` provenance · ``run.log`` · ``csv/metrics.csv`` curves
  ``checkpoints/{best,last}.ckpt`` (Lightning; ``--resume`` continues from ``last``) · ``wandb/``
  ``nest.nemo`` the final model in NeMo's ``EncDecDenoiseMaskedTokenPredModel`` layout (restorable by
  NeMo, loadable by every nestbench spec as ``EncoderSetup.checkpoint``) · ``curves.png`` loss and
  masked accuracy · ``metrics.json`` final dev numbers and the export's round-trip check
and one record appended to ``<runs>/results.jsonl``.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from ..checkpoint.nemo_file import file_sha256
from ..data import BucketBatchSampler, data_fingerprint
from ..lightning_setup import (
    checkpoint_callbacks,
    device_record,
    make_trainer,
    one_lightning_log_stream,
    run_loggers,
    write_or_check_config,
)
from ..provenance import portable_path, run_provenance
from ..runner import PreflightError, RunResult, default_runs_dir, rank_run_folder, save_record
from ..spec import LoadedSpec
from ..tracking import finish_tracking
from .build import build_objective
from .curves import plot_curves
from .data import NoiseSet, UnlabelledAudio, collate_audio
from .lit import PretrainModule
from .nemo_export import load_nest_objective, write_nest_nemo
from .objective import NestObjective
from .setup import PretrainExperiment
from .sources import PretrainManifests

log = logging.getLogger(__name__)
EXPORT_NAME = "nest.nemo"


def run_pretraining(
    spec: LoadedSpec,
    *,
    runs_dir: str | Path | None = None,
    resume: str | Path | bool | None = None,
    wandb: str | None = None,
    progress: bool = True,
) -> RunResult:
    """Pretrain as ``spec`` (a ``PretrainExperiment``) says; resumable like ``nestbench run``."""
    exp: PretrainExperiment = spec.experiment
    runs = default_runs_dir(runs_dir)
    started = time.time()

    # 1. fail fast: data, noise and checkpoint reachable before any work
    preflight(exp)

    # 2. run folder, made by global rank 0 alone (after it built the data); every other rank joins it
    prepare = lambda: exp.data.prepare(runs / "_data")  # noqa: E731
    with rank_run_folder(runs, exp.name, resume, prepare, exp.trainer.cpu_threads) as run_dir:
        return _pretrain_in(spec, exp, runs, run_dir, wandb, progress, started)


def preflight(exp: PretrainExperiment) -> None:
    from ..checkpoint import checkpoint_status

    problems = list(exp.data.missing())
    local, missing = checkpoint_status(exp.checkpoint)
    if missing:
        problems.append(missing)
    if problems:
        raise PreflightError(f"pretraining '{exp.name}' cannot start:\n  - " + "\n  - ".join(problems))


def _pretrain_in(spec, exp: PretrainExperiment, runs: Path, run_dir: Path, wandb, progress, started) -> RunResult:
    write_or_check_config(run_dir / "config.gin", spec.operative_config)
    log.info("run folder %s", run_dir)
    import lightning.pytorch as pl

    one_lightning_log_stream()
    pl.seed_everything(exp.seed, workers=True)

    # 3. data and objective: the noise set first, so a missing noise manifest stops the run here
    manifests: PretrainManifests = exp.data.prepare(runs / "_data")
    noise = NoiseSet.load(manifests.noise, required=exp.objective.noise_required and exp.objective.augment_prob > 0)
    objective, start_sha = build_objective(exp, noise)
    train_set = UnlabelledAudio.for_objective(manifests.train, objective, max_seconds=exp.max_seconds, seed=exp.seed)
    dev_set = (
        UnlabelledAudio.for_objective(manifests.dev, objective, max_seconds=exp.max_seconds, seed=exp.seed)
        if manifests.dev
        else None
    )
    log.info(
        "pretraining on %.2f h (%d utterances, %d skipped as too short)%s",
        sum(train_set.durations) / 3600, len(train_set), train_set.n_skipped,
        f"; dev {len(dev_set)} utterances" if dev_set else "; no dev set",
    )  # fmt: skip

    # 4. train with Lightning: the last checkpoint every epoch (resume), the best by dev loss
    module = PretrainModule(objective, exp.optimizer, seed=exp.seed)
    loggers, wandb_logger = run_loggers(spec, exp, run_dir, wandb)
    has_dev = dev_set is not None
    best_cb, last_cb = checkpoint_callbacks(run_dir, "dev/loss" if has_dev else None, "min")
    callbacks = [last_cb] if best_cb is None else [best_cb, last_cb]
    trainer = make_trainer(exp.trainer, run_dir, loggers, callbacks, progress=progress,
                           limit_val_batches=1.0 if has_dev else 0)  # fmt: skip
    last = run_dir / "checkpoints" / "last.ckpt"
    trainer.fit(
        module,
        _loader(exp, train_set, shuffle=True),
        _loader(exp, dev_set, shuffle=False) if dev_set else None,
        ckpt_path=str(last) if last.exists() else None,
    )
    if trainer.global_rank != 0:  # DDP: other ranks only train
        return RunResult(run_dir, {}, {})

    # 5. export the final model as a NEST .nemo and check it reads back to the same numbers
    objective = module.objective.cpu().eval()
    export = write_nest_nemo(run_dir / EXPORT_NAME, objective)
    check = roundtrip_difference(objective, export, dev_set or train_set)
    metrics = {
        "dev": {**_last_values(trainer.callback_metrics, "dev/"), **target_baselines(objective, dev_set)}
        if dev_set
        else {},
        "train": _last_values(trainer.callback_metrics, "train/"),
        "export": check,
    }
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    plot_curves(
        run_dir / "csv" / "metrics.csv", run_dir / "curves.png", num_classes=objective.quantizer.num_classes,
        baselines=metrics["dev"],
        title=f"{exp.name} ({run_dir.name}): NEST masked-token prediction",
    )  # fmt: skip

    # 6. provenance record
    record = _record(spec, exp, runs, run_dir, metrics, manifests, started)
    record.update(
        epochs=trainer.current_epoch, steps=trainer.global_step, device=device_record(exp.trainer, trainer),
        checkpoint={"source": portable_path(exp.checkpoint), "sha256": start_sha, "init": exp.init},
        export={"path": portable_path(export, root=runs), "sha256": file_sha256(export),
                "encoder": _encoder_shape(objective)},
        data={"train_hours": round(sum(train_set.durations) / 3600, 3), "train_utterances": len(train_set),
              "skipped_short": train_set.n_skipped + (dev_set.n_skipped if dev_set else 0),
              "dev_utterances": len(dev_set) if dev_set else 0, **manifests.info},
    )  # fmt: skip
    save_record(runs, run_dir, record)
    finish_tracking(wandb_logger, metrics, None)
    return RunResult(run_dir, metrics, record)


def _loader(exp: PretrainExperiment, data: UnlabelledAudio, *, shuffle: bool) -> DataLoader:
    """Training batches are shared out among the DDP ranks (rank/world ``None``: read from the process
    group once it runs); every rank scores the whole dev set, which a shard of a small one would leave
    some rank without, and the dev numbers then need no merging."""
    t = exp.trainer
    shard = None if shuffle else 1
    sampler = BucketBatchSampler(
        data.durations, t.batch_size, max_batch_duration=t.max_batch_duration, shuffle=shuffle, seed=exp.seed,
        rank=None if shard is None else 0, world_size=shard,
    )  # fmt: skip
    return DataLoader(data, batch_sampler=sampler, collate_fn=collate_audio, num_workers=t.num_workers)


@torch.inference_mode()
def roundtrip_difference(objective: NestObjective, export: Path, data: UnlabelledAudio, n: int = 4) -> dict:
    """Reload ``export`` with nestbench's loader and compare, on ``n`` utterances: the encoder's last
    layer (max abs difference) and the quantizer's targets (all equal?). Proves the file is the model."""
    loaded = load_nest_objective(export, augment=False)
    items = [data[(i, 0)] for i in range(min(n, len(data)))]
    batch = collate_audio(items)
    audio, lengths = batch["audio"], batch["audio_lengths"]
    ours = torch.stack(objective.nest(audio, lengths).layers)
    theirs = torch.stack(loaded.nest(audio, lengths).layers)
    same_tokens = bool(torch.equal(objective.targets(audio, lengths), loaded.targets(audio, lengths)))
    return {
        "encoder_max_abs_diff": float((ours - theirs).abs().max()),  # every layer
        "targets_identical": same_tokens,
        "utterances": len(items),
    }


@torch.inference_mode()
def target_baselines(objective: NestObjective, data: UnlabelledAudio, batch: int = 16) -> dict:
    """What a model that ignores the audio scores on ``data``'s targets: the entropy of their own class
    frequencies (the lowest loss any context-free prediction reaches; a lower dev loss means the encoder
    uses the context) and the share of the most frequent class (its masked accuracy)."""
    counts = torch.zeros(objective.quantizer.num_classes * objective.quantizer.num_books)
    for start in range(0, len(data), batch):
        items = collate_audio([data[(i, 0)] for i in range(start, min(start + batch, len(data)))])
        tokens = objective.targets(items["audio"], items["audio_lengths"])  # [B, T/8, books]
        frames = objective.nest.preprocessor.frame_count(items["audio_lengths"])
        steps = frames // objective.quantizer.combine_time_steps
        for b, n in enumerate(steps.tolist()):
            counts += torch.bincount(tokens[b, :n].flatten(), minlength=len(counts))[: len(counts)]
    p = counts[counts > 0] / counts.sum()
    entropy = float(-(p * p.log()).sum())
    return {"baseline_unigram_loss": round(entropy, 6), "baseline_majority_acc": round(float(p.max()), 6)}


def _last_values(metrics: dict, prefix: str) -> dict:
    return {k.removeprefix(prefix): round(float(v), 6) for k, v in metrics.items() if k.startswith(prefix)}


def _encoder_shape(objective: NestObjective) -> dict:
    conf = objective.nest.conformer_config
    return {"n_layers": conf.n_layers, "d_model": conf.d_model, "num_classes": objective.quantizer.num_classes,
            "parameters": sum(p.numel() for p in objective.nest.parameters())}  # fmt: skip


def _record(spec: LoadedSpec, exp: PretrainExperiment, runs: Path, run_dir: Path, metrics, manifests, started) -> dict:
    return {
        **run_provenance(spec, exp.name, exp.seed, exp.optimizer, runs, run_dir, started),
        "task": "pretrain",
        "board": None,
        "metrics": metrics,
        "data_fingerprint": data_fingerprint(manifests.all()),
    }
