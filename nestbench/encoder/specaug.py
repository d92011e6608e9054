"""SpecAugment on log-mel features (NeMo ``SpectrogramAugmentation`` semantics), training only."""

from __future__ import annotations

import torch
from torch import nn


class SpecAugment(nn.Module):
    """Zero ``freq_masks`` bands of up to ``freq_width`` bins and ``time_masks`` spans of up to
    ``time_width`` (a fraction of each utterance's length) frames; identity in eval mode."""

    def __init__(self, freq_masks: int = 2, freq_width: int = 27, time_masks: int = 10, time_width: float = 0.05):
        super().__init__()
        self.freq_masks, self.freq_width = freq_masks, freq_width
        self.time_masks, self.time_width = time_masks, time_width

    def forward(self, features: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        """features [B, F, T]; frames [B] valid frame counts."""
        if not self.training or (self.freq_masks == 0 and self.time_masks == 0):
            return features
        b, f, t = features.shape
        keep = torch.ones_like(features, dtype=torch.bool)
        dev = features.device
        for i in range(b):
            for _ in range(self.freq_masks):
                width = int(torch.randint(0, self.freq_width + 1, (), device="cpu"))
                start = int(torch.randint(0, max(1, f - width), (), device="cpu"))
                keep[i, start : start + width, :] = False
            max_width = max(1, int(self.time_width * int(frames[i])))
            for _ in range(self.time_masks):
                width = int(torch.randint(0, max_width + 1, (), device="cpu"))
                start = int(torch.randint(0, max(1, int(frames[i]) - width), (), device="cpu"))
                keep[i, :, start : start + width] = False
        return features.masked_fill(~keep.to(dev), 0.0)
