"""Random block masking of mel frames before the conv subsampling (NeMo ``RandomBlockMasking``).

Why blocks of 40 frames (400 ms): a masked block spans several 80 ms output frames, so the encoder
must infer content from context rather than copy it from a neighbour. NEST uses NeMo's
``allow_overlap=True`` mode: every frame that leaves room for a whole block is a block start with
probability ``mask_prob`` (NeMo draws a Binomial count of distinct uniformly random starts, which is
the same distribution), blocks may overlap, and about ``1 - (1 - p)^block_size`` (33 %) of the
frames end up masked. An utterance too short for a block (``block_size >= max_mask_ratio * frames``)
gets one block of ``short_block_size`` frames at its start instead, as in NeMo.

Masked frames are replaced by ``mask_embedding`` ([feat_in], NeMo key ``mask_processor.mask_embedding``,
initialised N(0, 0.1)). NEST's config freezes it (``freeze: true``), so by default it stays a fixed
random vector; ``freeze=False`` makes it learned.
"""

from __future__ import annotations

import torch
from torch import nn

_TARGET = "nemo.collections.asr.modules.RandomBlockMasking"


class RandomBlockMasking(nn.Module):
    """(features [B, F, T], frames [B]) -> (masked features [B, F, T], mask [B, F, T] of 0./1.)."""

    def __init__(
        self,
        feat_in: int = 80,
        mask_prob: float = 0.01,
        block_size: int = 40,
        freeze: bool = True,
        allow_overlap: bool = True,
        max_mask_ratio: float = 0.8,
        short_block_size: int = 8,
        mask_value: float | None = None,
    ):
        super().__init__()
        if block_size <= 0 or mask_prob <= 0:
            raise ValueError(
                f"masking with block_size={block_size} and mask_prob={mask_prob} masks nothing: the masked-token "
                "loss would have no positions (both must be > 0)"
            )
        if mask_prob > 1:
            raise ValueError(f"mask_prob={mask_prob} must be at most 1")
        if not allow_overlap:
            raise ValueError("allow_overlap=False (NeMo's fixed-proportion masking) is not implemented; NEST uses True")
        if short_block_size < 1 or not 0 < max_mask_ratio <= 1:
            raise ValueError("short_block_size must be >= 1 and max_mask_ratio in (0, 1]")
        self.feat_in = feat_in
        self.mask_prob = float(mask_prob)
        self.block_size = int(block_size)
        self.freeze = freeze
        self.allow_overlap = allow_overlap
        self.max_mask_ratio = float(max_mask_ratio)
        self.short_block_size = int(short_block_size)
        self.mask_value = mask_value
        if mask_value is None:
            self.mask_embedding = nn.Parameter(torch.empty(feat_in).normal_(0.0, 0.1))
        else:
            self.mask_embedding = nn.Parameter(torch.full((feat_in,), float(mask_value)), requires_grad=False)
        if freeze:
            self.mask_embedding.requires_grad_(False)

    def frame_mask(
        self, frames: torch.Tensor, num_frames: int, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """[B, num_frames] bool: which frames to mask, for utterances of ``frames`` valid frames."""
        device = frames.device
        rng_device = generator.device if generator is not None else device
        lengths = frames.to(rng_device).long()
        t = torch.arange(num_frames, device=rng_device)
        # a block may start at s < count = frames - block_size (NeMo's range), so it ends inside the utterance
        count = (lengths - self.block_size).clamp(min=0)
        u = torch.rand(lengths.shape[0], num_frames, generator=generator, device=rng_device)
        starts = (u < self.mask_prob) & (t[None, :] < count[:, None])
        # frame j is masked when a block starts in (j - block_size, j]: a windowed sum over the starts
        csum = nn.functional.pad(starts.long().cumsum(1), (self.block_size, 0))
        mask = (csum[:, self.block_size :] - csum[:, :num_frames]) > 0
        short = self.block_size >= lengths.double() * self.max_mask_ratio
        short_mask = t[None, :] < lengths.clamp(max=self.short_block_size)[:, None]
        mask = torch.where(short[:, None], short_mask, mask)
        return mask.to(device)

    def forward(
        self, features: torch.Tensor, frames: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if features.shape[1] != self.feat_in:
            raise ValueError(f"masking expects {self.feat_in} features, got {features.shape[1]}")
        mask = self.frame_mask(frames, features.shape[-1], generator)[:, None, :]
        embedding = self.mask_embedding.to(features.dtype)[None, :, None]
        masked = torch.where(mask, embedding, features)
        return masked, mask.expand_as(features).to(features.dtype)

    def nemo_config(self) -> dict:
        return {
            "_target_": _TARGET,
            "block_size": self.block_size,
            "mask_prob": self.mask_prob,
            "feat_in": self.feat_in,
            "freeze": self.freeze,
            "allow_overlap": self.allow_overlap,
            "max_mask_ratio": self.max_mask_ratio,
            "mask_value": self.mask_value,
        }
