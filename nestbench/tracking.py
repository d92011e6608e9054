"""Experiment tracking: Lightning's CSV logger always, W&B through ``WandbLogger`` when enabled.

W&B defaults to offline when no API key is configured, so runs work on a laptop or a cluster node
without network; ``wandb sync <run folder>/wandb/offline-run-*`` uploads them later.
"""

from __future__ import annotations

import os
from pathlib import Path

from .experiment import TrackingSetup


def wandb_mode(setup: TrackingSetup, override: str | None = None) -> str:
    mode = override or setup.wandb
    if mode not in ("auto", "online", "offline", "disabled"):
        raise ValueError(f"wandb mode {mode!r}: expected online, offline or disabled")
    if mode == "auto":
        has_key = (
            bool(os.environ.get("WANDB_API_KEY"))
            or (Path.home() / ".netrc").exists()
            and "api.wandb.ai" in (Path.home() / ".netrc").read_text(errors="ignore")
        )
        mode = "online" if has_key else "offline"
    return mode


def make_loggers(setup: TrackingSetup, run_dir: Path, run_name: str, mode: str, config: dict, resume_id: str | None):
    from lightning.pytorch.loggers import CSVLogger

    loggers = [CSVLogger(save_dir=str(run_dir), name="", version="csv")]
    wandb_logger = None
    if mode != "disabled":
        from lightning.pytorch.loggers import WandbLogger

        os.environ.setdefault("WANDB_SILENT", "true")
        wandb_logger = WandbLogger(
            name=run_name,
            save_dir=str(run_dir),
            project=setup.project,
            entity=setup.entity,
            group=setup.group,
            tags=list(setup.tags),
            offline=mode == "offline",
            config=config,
            id=resume_id,
            resume="allow" if resume_id else None,
        )
        loggers.append(wandb_logger)
    return loggers, wandb_logger


def log_final(wandb_logger, metrics: dict, predictions_table: tuple[list[str], list[list]] | None) -> None:
    """Final metrics go to the run summary (``test/intent_acc``, ...), predictions to a table."""
    if wandb_logger is None:
        return
    run = wandb_logger.experiment
    run.summary.update({k: v for k, v in _flatten(metrics).items() if isinstance(v, (int, float, str))})
    if predictions_table is not None:
        columns, rows = predictions_table
        wandb_logger.log_table(key="test/predictions", columns=columns, data=rows)


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "/"))
        else:
            out[key] = v
    return out
