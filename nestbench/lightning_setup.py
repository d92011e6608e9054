"""The Lightning side that ``nestbench run``, ``evaluate`` and ``pretrain`` share: the trainer a
``TrainerSetup`` binds, the last/best checkpoint pair that makes a run resumable, the config a run
must keep when resumed, its W&B identity, and one stream for Lightning's log lines."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

from .experiment import TrainerSetup
from .launch import distributed_trainer_args
from .provenance import config_hash, device_info
from .tracking import make_loggers, wandb_mode


def checkpoint_callbacks(run_dir: Path, monitor: str | None, mode: str = "min") -> tuple:
    """``(best, last)`` writing ``checkpoints/best.ckpt`` (by ``monitor``; ``None``: no best) and
    ``checkpoints/last.ckpt``.

    Lightning 2.6's ``save_last`` refreshes last.ckpt only when the best checkpoint changes: a run whose
    monitored metric stopped improving would resume from its best epoch and redo (or lose) every later
    one. So last.ckpt has its own callback, written at the end of every training epoch (after its
    validation)."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    folder = run_dir / "checkpoints"
    best = None
    if monitor is not None:
        best = ModelCheckpoint(dirpath=folder, filename="best", monitor=monitor, mode=mode, save_top_k=1,
                               enable_version_counter=False)  # fmt: skip
    last = ModelCheckpoint(dirpath=folder, filename="last", monitor=None, save_top_k=1,
                           save_on_train_epoch_end=True, enable_version_counter=False)  # fmt: skip
    return best, last


def make_trainer(t: TrainerSetup, run_dir: Path, loggers, callbacks: list, *, progress: bool, **extra):
    """The ``pl.Trainer`` that ``t`` binds (DDP across devices and nodes included); ``extra`` adds or
    replaces keyword arguments (``limit_val_batches``). Batches are sharded by nestbench's own
    samplers, so Lightning's distributed sampler stays off."""
    import lightning.pytorch as pl

    kwargs = dict(
        max_epochs=t.max_epochs,
        max_steps=t.max_steps,
        accelerator=t.accelerator,
        **distributed_trainer_args(t.num_nodes, t.devices),
        precision=t.precision,
        accumulate_grad_batches=t.accumulate_grad_batches,
        gradient_clip_val=t.gradient_clip_val,
        val_check_interval=t.val_check_interval,
        check_val_every_n_epoch=t.check_val_every_n_epoch,
        log_every_n_steps=t.log_every_n_steps,
        deterministic=t.deterministic,
        logger=loggers,
        callbacks=callbacks,
        enable_progress_bar=progress,
        default_root_dir=str(run_dir),
        limit_train_batches=t.limit_train_batches,
        use_distributed_sampler=False,
        num_sanity_val_steps=0,
        enable_model_summary=False,
    )
    return pl.Trainer(**{**kwargs, **extra})


def device_record(t: TrainerSetup, trainer) -> dict:
    """Where the run trained, for its record."""
    return {
        **device_info(t.accelerator),
        "accelerator": str(trainer.accelerator.__class__.__name__),
        "precision": t.precision,
        "devices": t.devices,
        "num_nodes": t.num_nodes,
    }


def run_loggers(spec, exp, run_dir: Path, wandb: str | None):
    """``(loggers, wandb_logger)`` of a run: the CSV curves and, unless W&B is disabled (``wandb``
    overrides the spec's ``TrackingSetup.wandb``), a W&B run named ``<experiment>/<run-id>`` that a
    resumed run continues under its earlier id."""
    mode = wandb_mode(exp.tracking, wandb)
    name = f"{exp.name}/{run_dir.name}"
    return make_loggers(exp.tracking, run_dir, name, mode, _tracking_config(spec, exp.name), _wandb_id(run_dir))


def _tracking_config(spec, name: str) -> dict:
    """What a W&B run shows as its config: the spec, its overrides and the operative config."""
    return {
        "spec": str(spec.path),
        "overrides": list(spec.overrides),
        "config_hash": config_hash(spec.operative_config),
        "experiment": name,
        "operative_config": spec.operative_config,
    }


def write_or_check_config(path: Path, operative: str) -> None:
    """A resumed run must continue under the config it started with."""
    if path.exists() and config_hash(path.read_text(encoding="utf-8")) != config_hash(operative):
        raise ValueError(
            f"{path}: the spec's operative config changed since this run started; "
            "resume with the original spec and overrides, or start a new run"
        )
    path.write_text(operative, encoding="utf-8")


def _wandb_id(run_dir: Path) -> str | None:
    """Reuse the W&B run id of an interrupted run, so a resumed run continues the same W&B run."""
    found = sorted((run_dir / "wandb").glob("offline-run-*")) + sorted((run_dir / "wandb").glob("run-*"))
    return found[-1].name.rsplit("-", 1)[-1] if found else None


def one_lightning_log_stream() -> None:
    """Lightning adds its own console handler when it is imported before logging is configured;
    route its records through the root logger instead, so each message prints once."""
    names = [n for n in logging.root.manager.loggerDict if n.split(".")[0] in ("lightning", "pytorch_lightning")]
    for name in names:
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            if type(handler) is logging.StreamHandler:
                logger.removeHandler(handler)
        logger.propagate = True
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_drop_tips)
    # Lightning installs its own warning filters on import; these two are noise for every run.
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
    warnings.filterwarnings("ignore", message=r".*smaller than the logging interval.*")


def _drop_tips(record: logging.LogRecord) -> bool:
    return "Tip:" not in record.getMessage()
