"""The trial's side of a sweep, inside its own ``nestbench run`` process.

``nestbench sweep`` launches each trial with ``NESTBENCH_TRIAL`` (JSON) in its environment;
``nestbench run`` then calls ``trial_hooks``, which binds Optuna's Lightning pruning callback to that
trial (``optuna.trial.Trial(study, trial_id)`` works from any process with RDB storage), so the dev
metric after every validation reaches the study and the pruner can stop the run. A pruned run raises
``TrialPruned`` out of ``fit``; the CLI turns it into ``PRUNED_EXIT_CODE``.
"""

from __future__ import annotations

import logging

from optuna import TrialPruned
from optuna_integration.pytorch_lightning import PyTorchLightningPruningCallback

from .launch import PRUNED_AT, PRUNED_EXIT_CODE, RUN_DIR, THREADS

__all__ = ["PRUNED_EXIT_CODE", "TrialPruned", "trial_hooks"]

log = logging.getLogger(__name__)


class TrialReporter(PyTorchLightningPruningCallback):
    """Optuna's pruning callback, plus two facts the sweep reads back from the study: where the run
    folder is, and (before ``TrialPruned`` unwinds the run) that the pruner stopped it. With
    ``sign=-1`` the watched metric is reported negated (e.g. dev loss in a study that maximises)."""

    def __init__(self, trial, monitor: str, sign: int = 1):
        self.watched, self.sign = monitor, sign
        super().__init__(trial, monitor=monitor if sign > 0 else f"-{monitor}")

    def on_fit_start(self, trainer, pl_module) -> None:
        super().on_fit_start(trainer, pl_module)
        self._trial.set_user_attr(RUN_DIR, str(trainer.default_root_dir))

    def on_validation_end(self, trainer, pl_module) -> None:
        value = trainer.callback_metrics.get(self.watched)
        if self.sign < 0 and value is not None:
            trainer.callback_metrics[self.monitor] = -value
        try:
            super().on_validation_end(trainer, pl_module)
        except TrialPruned:
            self._trial.set_user_attr(PRUNED_AT, int(pl_module.current_epoch))
            log.info("pruned by the sweep at epoch %d", pl_module.current_epoch)
            raise


def trial_hooks(info: dict) -> tuple[list, dict]:
    """Lightning callbacks and results-record fields for the trial described by ``info``
    (``storage``, ``study``, ``trial_id``, ``number``, ``objective``, ``prune_on``, ``prune_sign``,
    ``params``, ``pruner``)."""
    import optuna
    import torch

    from .samplers import make_pruner
    from .storage import open_storage

    pruner = info.get("pruner") or {}
    study = optuna.load_study(
        study_name=info["study"],
        storage=open_storage(info["storage"]),
        sampler=optuna.samplers.RandomSampler(),  # the trial's values are fixed already; nothing is sampled here
        pruner=make_pruner(pruner.get("name", "none"), pruner.get("startup", 0), pruner.get("warmup", 0)),
    )
    trial = optuna.trial.Trial(study, int(info["trial_id"]))
    trial.set_user_attr(THREADS, torch.get_num_threads())  # PyTorch's CPU results depend on it: best.gin says so
    extra = {"study": info["study"], "trial": int(info["number"]), "sweep_params": dict(info.get("params") or {})}
    reporter = TrialReporter(trial, info.get("prune_on") or info["objective"], int(info.get("prune_sign", 1)))
    return [reporter], extra
