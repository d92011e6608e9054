"""``PretrainModule``: a ``NestObjective`` trained by Lightning, resumable exactly.

Every random draw of a step (augmentation and masking) comes from a ``torch.Generator`` seeded by
(seed, epoch, global step, batch index), and the global generator (dropout, the mel front end's dither)
is reseeded from the same key before each step. Seeding only at the epoch start is not enough here:
Lightning creates the loaders' iterators, which draw from the global generator, at different points in
a resumed epoch than in an uninterrupted one, and the dither would differ. With a data loader whose
order and crops depend only on (seed, epoch) (``BucketBatchSampler`` + ``UnlabelledAudio``), a run
resumed from an epoch-end checkpoint continues exactly as the uninterrupted one. Validation masks with
a generator seeded by the batch index and never augments, so dev numbers are comparable across epochs.
"""

from __future__ import annotations

import lightning.pytorch as pl
import torch

from ..data import batch_to
from ..experiment import OptimizerSetup
from ..lit import optimizer_and_schedule, step_seed
from .objective import NestObjective


def step_generator(*key: int) -> torch.Generator:
    """A CPU generator seeded from the integers ``key`` (the augmentation draws on the CPU; masking
    draws on the generator's device and moves the mask)."""
    return torch.Generator().manual_seed(step_seed(*key))


class PretrainModule(pl.LightningModule):
    def __init__(self, objective: NestObjective, optim: OptimizerSetup, seed: int = 0):
        super().__init__()
        self.objective = objective
        self.optim = optim
        self.seed = seed

    def transfer_batch_to_device(self, batch: dict, device, dataloader_idx: int) -> dict:
        return batch_to(batch, device)

    # -- training -----------------------------------------------------------------------------
    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        # batch_idx too: with gradient accumulation several batches share one global step
        key = (self.seed, self.current_epoch, self.global_step, batch_idx)
        gen = step_generator(*key)
        torch.manual_seed(step_seed(*key, 1))  # dropout and dither of this step
        out = self.objective(batch["audio"], batch["audio_lengths"], gen)
        loss = out["loss"]
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite pretraining loss {loss.item()} at step {self.global_step}")
        size = len(batch["ids"])
        self.log("train/loss", loss, prog_bar=True, batch_size=size)
        self.log("train/masked_acc", out["accuracy"], batch_size=size)
        self.log("train/lr", self.trainer.optimizers[0].param_groups[-1]["lr"], batch_size=size)
        return loss

    # -- validation ---------------------------------------------------------------------------
    def validation_step(self, batch: dict, batch_idx: int) -> None:
        gen = step_generator(self.seed, 1_000_003, batch_idx)  # the same masks at every validation
        augmentation, self.objective.augmentation = self.objective.augmentation, None
        try:
            out = self.objective(batch["audio"], batch["audio_lengths"], gen)
        finally:
            self.objective.augmentation = augmentation
        size = len(batch["ids"])
        self.log("dev/loss", out["loss"], prog_bar=True, batch_size=size, sync_dist=True)
        self.log("dev/masked_acc", out["accuracy"], batch_size=size, sync_dist=True)

    # -- optimisation -------------------------------------------------------------------------
    def configure_optimizers(self):
        params = [p for p in self.objective.parameters() if p.requires_grad]  # frozen quantizer/mask stay out
        groups = [{"params": params, "lr": self.optim.lr}]
        return optimizer_and_schedule(self.optim, groups, int(self.trainer.estimated_stepping_batches))
