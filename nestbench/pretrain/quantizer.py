"""Frozen random-projection quantizer (BEST-RQ): the targets NEST learns to predict.

Why frozen and random: the targets only need to be a stable, content-dependent discretisation of the
clean input; a learned quantizer could collapse. NeMo's ``RandomProjectionVectorQuantizer`` stacks
``combine_time_steps`` mel frames (8 = the encoder's subsampling, so one target per output frame),
projects them with a random Xavier-normal matrix, l2-normalises the projection and takes the nearest
of ``num_classes`` random unit vectors.

State-dict keys (NeMo's, under ``quantizer.``):

* ``proj.weight``: [num_books * code_dim, feat_in * combine_time_steps] (``nn.Linear``, no bias)
* ``codebooks``:   [num_books, num_classes, code_dim], float64, unit rows

Both are ``nn.Parameter`` with ``requires_grad=False`` when ``freeze`` (as NeMo freezes them), so a
NeMo NEST checkpoint's quantizer loads here and ours loads in NeMo.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

_TARGET = "nemo.collections.asr.modules.RandomProjectionVectorQuantizer"


class RandomProjectionQuantizer(nn.Module):
    """Mel features [B, F, T] -> target ids [B, T // combine_time_steps, num_books] (int64)."""

    def __init__(
        self,
        feat_in: int = 80,
        code_dim: int = 16,
        num_classes: int = 8192,
        num_books: int = 1,
        dist_fn: str = "l2",
        freeze: bool = True,
        squeeze_single: bool = False,
        combine_time_steps: int = 8,
    ):
        super().__init__()
        if dist_fn not in ("l2", "cosine"):
            raise ValueError(f"dist_fn={dist_fn!r}: must be 'l2' or 'cosine'")
        for name, value in dict(
            feat_in=feat_in,
            code_dim=code_dim,
            num_classes=num_classes,
            num_books=num_books,
            combine_time_steps=combine_time_steps,
        ).items():
            if value < 1:
                raise ValueError(f"{name}={value} must be at least 1")
        self.feat_in = feat_in
        self.code_dim = code_dim
        self.num_classes = num_classes
        self.num_books = num_books
        self.dist_fn = dist_fn
        self.freeze = freeze
        self.squeeze_single = squeeze_single
        self.combine_time_steps = combine_time_steps
        self.proj = nn.Linear(feat_in * combine_time_steps, num_books * code_dim, bias=False)
        nn.init.xavier_normal_(self.proj.weight)
        # NeMo draws the codebooks in float64 and keeps them so; distances are computed in float64 too.
        codebooks = F.normalize(torch.randn(num_books, num_classes, code_dim, dtype=torch.float64), dim=-1)
        self.codebooks = nn.Parameter(codebooks)
        if freeze:
            for p in self.parameters():
                p.requires_grad_(False)

    @torch.no_grad()
    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """features [B, F, T] with T a multiple of ``combine_time_steps`` (the mel front end pads to 16)."""
        b, f, t = features.shape
        if f != self.feat_in:
            raise ValueError(f"quantizer expects {self.feat_in} features, got {f}")
        c = self.combine_time_steps
        if t % c:
            raise ValueError(f"{t} frames is not a multiple of combine_time_steps={c} (pad the features first)")
        steps = t // c
        # [B, F, T] -> [B, T, F] -> [B, T/c, c*F]: c consecutive frames side by side, as NeMo stacks them
        x = features.transpose(1, 2).reshape(b, steps, c * f).to(self.proj.weight.dtype)
        x = F.normalize(self.proj(x).view(b, steps, self.num_books, self.code_dim), dim=-1)
        scores = torch.einsum("btnd,ncd->btnc", x.to(torch.float64), self.codebooks.to(torch.float64))
        if self.dist_fn == "l2":
            # |x - c|^2 = |x|^2 + |c|^2 - 2 x.c: the same argmin as NeMo's explicit difference norms
            # (up to float64 rounding) without a [B, T, books, code_dim, classes] intermediate.
            sq = self.codebooks.to(torch.float64).pow(2).sum(-1)  # [books, classes]
            ids = (sq[None, None] - 2.0 * scores).argmin(dim=-1)
        else:
            ids = scores.argmax(dim=-1)
        if self.num_books == 1 and self.squeeze_single:
            ids = ids.squeeze(-1)
        return ids

    def nemo_config(self) -> dict:
        return {
            "_target_": _TARGET,
            "feat_in": self.feat_in,
            "code_dim": self.code_dim,
            "num_books": self.num_books,
            "num_classes": self.num_classes,
            "dist_fn": self.dist_fn,
            "freeze": self.freeze,
            "squeeze_single": self.squeeze_single,
            "combine_time_steps": self.combine_time_steps,
        }
