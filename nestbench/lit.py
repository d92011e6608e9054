"""One LightningModule for every task: upstream features -> task head, with the task's loss and evaluator.

Dev metrics come from the task's evaluator at each validation (``dev/<metric>``), so checkpoint
selection and sweeps use the task's real metric, never a test set. Under DDP each rank scores a
shard of dev and the evaluators' states are merged before computing, so every rank logs the same
corpus-level value.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import lightning.pytorch as pl
import numpy as np
import torch
from torch import nn

from .data import batch_to
from .experiment import OptimizerSetup
from .task import Evaluator, Task, headline
from .upstream import Upstream


def step_seed(*key: int) -> int:
    """A seed for the global generator from the integers ``key``, well spread (SeedSequence)."""
    return int(np.random.SeedSequence([int(k) for k in key]).generate_state(1, np.uint64)[0] >> 1)


class TaskModule(pl.LightningModule):
    def __init__(
        self,
        upstream: Upstream,
        task: Task,
        head: nn.Module,
        optim: OptimizerSetup,
        dev_evaluator: Callable[[], Evaluator],
        seed: int = 0,
    ):
        super().__init__()
        self.upstream, self.task, self.head = upstream, task, head
        self.optim = optim
        self.new_dev_evaluator = dev_evaluator
        self.seed = seed
        self._dev: Evaluator | None = None
        self.last_dev_metrics: dict[str, float] = {}

    def features(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """features [B, T, D] + frame lengths [B]: from audio, or from a frozen encoder's cached layers."""
        if self.upstream.from_cache:
            return self.upstream.forward_cached(batch["features"], batch["feature_lengths"])
        return self.upstream(batch["audio"], batch["audio_lengths"])

    def transfer_batch_to_device(self, batch: dict, device, dataloader_idx: int) -> dict:
        return batch_to(batch, device)

    # -- training -----------------------------------------------------------------------------
    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        # Dropout, dither and SpecAugment draw from the global generator; reseeded from (seed, epoch,
        # step, batch) before every step, a resumed run replays them exactly. Seeding once per epoch is
        # not enough: Lightning builds the loader iterators (each takes a draw) at other points after a
        # resume. batch_idx too: with gradient accumulation several batches share one global step.
        torch.manual_seed(step_seed(self.seed, self.current_epoch, self.global_step, batch_idx))
        feats, lengths = self.features(batch)
        loss = self.task.loss(self.head, feats, lengths, batch)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite training loss {loss.item()} at step {self.global_step}")
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["ids"]))
        self.log("train/lr", self.trainer.optimizers[0].param_groups[-1]["lr"], batch_size=len(batch["ids"]))
        return loss

    # -- validation ---------------------------------------------------------------------------
    def on_validation_epoch_start(self) -> None:
        self._dev = self.new_dev_evaluator()

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        feats, lengths = self.features(batch)
        if self.task.dev_loss:
            loss = self.task.loss(self.head, feats, lengths, batch)
            self.log("dev/loss", loss, batch_size=len(batch["ids"]), sync_dist=True)
        self._dev.update(batch["examples"], self.task.infer(self.head, feats, lengths, batch["examples"]))

    def on_validation_epoch_end(self) -> None:
        evaluator, self._dev = self._dev, None
        if evaluator is None:
            return
        if self.trainer.world_size > 1:  # every rank scored its shard: merge them all, compute everywhere
            import torch.distributed as dist

            states = [None] * self.trainer.world_size
            dist.all_gather_object(states, evaluator.state())
            evaluator = self.new_dev_evaluator()
            evaluator.merge(states)
        metrics = evaluator.compute()
        self.last_dev_metrics = metrics
        main = headline(self.task).name
        for key, value in metrics.items():
            if isinstance(value, (int, float)):
                self.log(f"dev/{key}", float(value), prog_bar=key == main)
        if self.upstream.frozen and self.upstream.aggregator.protocol != "last":
            for layer, w in self.upstream.layer_weights().items():
                self.log(f"layer_weight/{layer}", w)

    # -- optimisation -------------------------------------------------------------------------
    def configure_optimizers(self):
        o = self.optim
        enc = self.upstream.encoder_parameters()
        enc_ids = {id(p) for p in enc}
        rest = [p for p in self.parameters() if p.requires_grad and id(p) not in enc_ids]
        groups = [{"params": rest, "lr": o.lr}]
        if enc:
            groups.insert(0, {"params": enc, "lr": o.encoder_lr if o.encoder_lr is not None else o.lr})
        return optimizer_and_schedule(o, groups, int(self.trainer.estimated_stepping_batches))


def optimizer_and_schedule(o: OptimizerSetup, groups: list[dict], total_steps: int) -> dict:
    """AdamW over parameter ``groups`` (each with its base ``lr``) and ``o.schedule`` stepped every
    optimisation step, floored at ``o.min_lr``: what ``configure_optimizers`` returns."""
    # The multi-tensor (foreach) update: torch's CPU default is a per-tensor Python loop, 10 ms of a
    # 70 ms quickstart step. (The fused kernel is as fast, but a sweep trial replayed from best.gin
    # then differs from the trial in the 7th digit of its dev loss.)
    optimizer = torch.optim.AdamW(groups, betas=tuple(o.betas), weight_decay=o.weight_decay, foreach=True)
    total = max(1, int(total_steps))
    base = [g["lr"] for g in groups]
    factor = schedule_factor(o.schedule, o.warmup_steps, total)
    lambdas = [(lambda step, b=b: max(factor(step), o.min_lr / b) if b > 0 else 0.0) for b in base]
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambdas)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def schedule_factor(name: str, warmup: int, total: int):
    """Multiplier on the base learning rate at optimisation step ``step``."""
    warmup = max(0, min(warmup, total - 1))

    def warmup_cosine(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    def noam(step: int) -> float:
        step = step + 1
        w = max(1, warmup)
        return min(step**-0.5, step * w**-1.5) * w**0.5

    def constant(step: int) -> float:
        return min(1.0, (step + 1) / warmup) if warmup else 1.0

    table = {"warmup_cosine": warmup_cosine, "noam": noam, "constant": constant}
    if name not in table:
        raise ValueError(f"OptimizerSetup.schedule={name!r}: expected one of {sorted(table)}")
    return table[name]
