"""Masked-token cross-entropy (NeMo ``MultiMLMLoss`` / ``MLMLoss``), plus accuracy for curves.

Why only masked steps: predicting visible frames is trivial copying; the objective is to infer the
tokens of the hidden ones. The frame mask [B, F, T] is grouped by ``combine_time_steps`` (the
subsampling, 8) into one value per encoder step; a step counts as masked when the masked fraction of
its frames x features is strictly greater than ``mask_threshold`` (NeMo's ``mean > 0.8``; with 8
frames that means at least 7). The loss is the mean NLL over masked steps, averaged over books.

Differences from NeMo, on purpose: a batch with no masked step gives loss 0 (still attached to the
graph) instead of NaN, and the accuracy and masked-step count are returned alongside. The module has
no weights, so a NeMo checkpoint has no ``loss.`` keys.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

_TARGET = "nemo.collections.asr.losses.MultiMLMLoss"


@dataclass
class MaskedTokenLossOutput:
    loss: torch.Tensor  # scalar, differentiable
    accuracy: torch.Tensor  # scalar, fraction of masked (step, book) predictions whose argmax is the target
    n_masked: int  # masked encoder steps in the batch


class MultiMLMLoss(nn.Module):
    def __init__(
        self,
        combine_time_steps: int = 8,
        mask_threshold: float = 0.8,
        num_decoders: int = 1,
        squeeze_single: bool = False,
    ):
        super().__init__()
        if combine_time_steps < 1 or not 0 <= mask_threshold < 1:
            raise ValueError(f"combine_time_steps={combine_time_steps} must be >= 1, mask_threshold in [0, 1)")
        self.combine_time_steps = combine_time_steps
        self.mask_threshold = mask_threshold
        self.num_decoders = num_decoders
        self.squeeze_single = squeeze_single

    def step_mask(self, masks: torch.Tensor) -> torch.Tensor:
        """Frame mask [B, F, T] (or [B, T]) -> [B, T // combine] bool of masked encoder steps."""
        if masks.dim() == 2:
            masks = masks[:, None, :]
        b, f, t = masks.shape
        c = self.combine_time_steps
        if t % c:
            raise ValueError(f"{t} mask frames is not a multiple of combine_time_steps={c}")
        grouped = masks.transpose(1, 2).reshape(b, t // c, c * f).to(torch.float32)
        return grouped.mean(-1) > self.mask_threshold

    def forward(self, masks: torch.Tensor, log_probs: torch.Tensor, targets: torch.Tensor) -> MaskedTokenLossOutput:
        """masks [B, F, T]; log_probs [B, T', C, books] (or [B, T', C]); targets [B, T'', books] (or [B, T''])."""
        if log_probs.dim() == 3:
            log_probs = log_probs.unsqueeze(-1)
        if targets.dim() == 2:
            targets = targets.unsqueeze(-1)
        if log_probs.shape[-1] != self.num_decoders or targets.shape[-1] != self.num_decoders:
            raise ValueError(
                f"expected {self.num_decoders} books, got log_probs {tuple(log_probs.shape)}, "
                f"targets {tuple(targets.shape)}"
            )
        steps = self.step_mask(masks)
        if log_probs.shape[1] != steps.shape[1]:
            raise ValueError(f"decoder gives {log_probs.shape[1]} steps but the mask has {steps.shape[1]}")
        # NeMo zero-pads targets on the right to the mask's step count; never longer in practice
        targets = nn.functional.pad(targets, (0, 0, 0, steps.shape[1] - targets.shape[1]))
        n_masked = int(steps.sum())
        if n_masked == 0:
            zero = log_probs.sum() * 0.0
            return MaskedTokenLossOutput(zero, zero.detach(), 0)
        picked = log_probs[steps]  # [N, C, books]
        wanted = targets[steps]  # [N, books]
        nll = -picked.gather(1, wanted[:, None, :]).squeeze(1)  # [N, books]
        loss = nll.mean(0).mean()
        accuracy = (picked.argmax(1) == wanted).float().mean().detach()
        return MaskedTokenLossOutput(loss, accuracy, n_masked)

    def nemo_config(self) -> dict:
        return {
            "_target_": _TARGET,
            "combine_time_steps": self.combine_time_steps,
            "mask_threshold": self.mask_threshold,
            "num_decoders": self.num_decoders,
            "squeeze_single": self.squeeze_single,
        }
