"""Experiment tracking: Lightning's CSV logger always, W&B through ``WandbLogger`` when enabled.

The CSV curves (``csv/metrics.csv``) are written at every logging step and survive a resume: Lightning's
own CSV logger keeps rows in memory for 100 steps (a killed run loses them) and deletes an existing
``metrics.csv`` when a resumed run starts logging (the run loses its whole curve up to the kill).

W&B defaults to offline when no API key is configured, so runs work on a laptop or a cluster node
without network; ``wandb sync <run folder>/wandb/offline-run-*`` uploads them later.
"""

from __future__ import annotations

import csv
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
    loggers = [resumable_csv_logger(run_dir)]
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


def finish_tracking(wandb_logger, metrics: dict, predictions_table: tuple[list[str], list[list]] | None) -> None:
    """Final metrics go to the W&B run summary (``test/intent_acc``, ...), predictions to a table, and
    the run is closed."""
    if wandb_logger is None:
        return
    run = wandb_logger.experiment
    run.summary.update({k: v for k, v in _flatten(metrics).items() if isinstance(v, (int, float, str))})
    if predictions_table is not None:
        columns, rows = predictions_table
        wandb_logger.log_table(key="test/predictions", columns=columns, data=rows)
    run.finish()


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "/"))
        else:
            out[key] = v
    return out


def resumable_csv_logger(run_dir: Path):
    """Lightning's ``CSVLogger`` writing ``<run_dir>/csv/metrics.csv`` at every logging step; a resumed
    run keeps the rows logged before its checkpoint and replaces those after it (which it replays)."""
    from lightning.fabric.loggers.logger import rank_zero_experiment
    from lightning.pytorch.loggers import CSVLogger
    from lightning.pytorch.loggers.csv_logs import ExperimentWriter

    class ResumingWriter(ExperimentWriter):
        def _check_log_dir_exists(self) -> None:  # Lightning deletes metrics.csv here
            self._earlier = Path(self.metrics_file_path).is_file()

        def log_metrics(self, metrics_dict: dict, step: int | None = None) -> None:
            if self._earlier and step is not None:
                self._earlier = False
                self.metrics_keys = keep_rows_before(Path(self.metrics_file_path), step)
            super().log_metrics(metrics_dict, step)

    class ResumingCSVLogger(CSVLogger):
        @property
        @rank_zero_experiment
        def experiment(self):
            if self._experiment is None:
                self._fs.makedirs(self.root_dir, exist_ok=True)
                self._experiment = ResumingWriter(log_dir=self.log_dir)
            return self._experiment

    return ResumingCSVLogger(save_dir=str(run_dir), name="", version="csv", flush_logs_every_n_steps=1)


def keep_rows_before(path: Path, step: int) -> list[str]:
    """Drop the rows of ``path`` (a metrics CSV) logged at ``step`` or later; returns its columns.
    Those rows came after the checkpoint a run resumes from, and the resumed run logs them again."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        columns = list(reader.fieldnames or [])
        rows = [r for r in reader if r.get("step") not in (None, "") and int(float(r["step"])) < step]
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return sorted(columns)
