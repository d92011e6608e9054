"""Transformer-XL relative-position self-attention, NeMo ``RelPositionMultiHeadAttention`` semantics.

score[i, j] = ((q_i + u) . k_j + (q_i + v) . p_{i-j}) / sqrt(d_k), with p the sinusoidal embedding
of the relative distance i - j projected by ``linear_pos``. We hand the positional term to
``scaled_dot_product_attention`` as an additive mask, so the content term runs in the fused kernel.

Long inputs are processed in blocks of query rows. Each block needs only the relative positions it
can see, which we gather with a strided view instead of NeMo's pad-and-reshape shift: the result is
*exactly* full attention (not an approximation) while memory grows with block x T, not T x 2T.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

_MASK_VALUE = -10000.0  # NeMo's INF_VAL; exp() of it underflows to 0 in fp32 and bf16 alike.


def relative_positions(length: int, d_model: int, device, dtype) -> torch.Tensor:
    """Sinusoidal embeddings [1, 2L-1, D] for distances L-1, ..., 0, ..., -(L-1) (NeMo's order)."""
    pos = torch.arange(length - 1, -length, -1, dtype=torch.float32, device=device).unsqueeze(1)
    div = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32, device=device) * -(math.log(10000.0) / d_model))
    pe = torch.zeros(pos.shape[0], d_model, device=device)
    pe[:, 0::2] = torch.sin(pos * div)
    pe[:, 1::2] = torch.cos(pos * div)
    return pe.unsqueeze(0).to(dtype)


class RelPositionSelfAttention(nn.Module):
    def __init__(
        self,
        d_model: int,
        n_heads: int,
        dropout: float,
        use_bias: bool = True,
        pos_bias_u: nn.Parameter | None = None,
        pos_bias_v: nn.Parameter | None = None,
        block_elements: int = 1 << 25,
    ):
        super().__init__()
        self.h, self.d_k = n_heads, d_model // n_heads
        self.dropout = dropout
        self.block_elements = block_elements
        self.linear_q = nn.Linear(d_model, d_model, bias=use_bias)
        self.linear_k = nn.Linear(d_model, d_model, bias=use_bias)
        self.linear_v = nn.Linear(d_model, d_model, bias=use_bias)
        self.linear_out = nn.Linear(d_model, d_model, bias=use_bias)
        self.linear_pos = nn.Linear(d_model, d_model, bias=False)
        if pos_bias_u is None:  # untied: each layer owns its biases
            self.pos_bias_u = nn.Parameter(torch.zeros(n_heads, self.d_k))
            self.pos_bias_v = nn.Parameter(torch.zeros(n_heads, self.d_k))
        else:
            self.pos_bias_u, self.pos_bias_v = pos_bias_u, pos_bias_v

    def forward(
        self,
        x: torch.Tensor,
        pos_emb: torch.Tensor,
        key_padding: torch.Tensor | None,
        context: tuple[int, int] = (-1, -1),
    ) -> torch.Tensor:
        """x [B, T, D]; pos_emb [1, 2T-1, D]; key_padding [B, T] True where padded."""
        b, t, _ = x.shape
        q, k, v = (self._heads(lin(x)) for lin in (self.linear_q, self.linear_k, self.linear_v))
        p = self._heads(self.linear_pos(pos_emb))  # [1, H, 2T-1, d_k]
        q_u = q + self.pos_bias_u.unsqueeze(1).to(q.dtype)
        q_v = q + self.pos_bias_v.unsqueeze(1).to(q.dtype)
        scale = 1.0 / math.sqrt(self.d_k)
        dropout = self.dropout if self.training else 0.0

        rows = max(1, min(t, self.block_elements // max(1, b * self.h * 2 * t)))
        outs = []
        for start in range(0, t, rows):
            stop = min(t, start + rows)
            bias = _positional_scores(q_v[:, :, start:stop], p, start, stop, t) * scale
            mask = _visibility_mask(key_padding, context, start, stop, t, x.device)
            if mask is not None:
                bias = bias.masked_fill(mask, _MASK_VALUE)
            outs.append(F.scaled_dot_product_attention(q_u[:, :, start:stop], k, v, attn_mask=bias, dropout_p=dropout))
        out = outs[0] if len(outs) == 1 else torch.cat(outs, dim=2)
        return self.linear_out(out.transpose(1, 2).reshape(b, t, self.h * self.d_k))

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.shape[0], x.shape[1], self.h, self.d_k).transpose(1, 2)


def _positional_scores(q_v: torch.Tensor, p: torch.Tensor, start: int, stop: int, t: int) -> torch.Tensor:
    """(q_i + v) . p_{i-j} for query rows [start, stop) and all keys j: [B, H, stop-start, T].

    Row i needs embeddings of distances i..i-T+1, i.e. ``p[T-1-i : 2T-1-i]``. The block needs the
    union ``p[T-stop : 2T-1-start]`` (width W = T + rows - 1); row l then reads W-1 apart in memory
    starting at offset rows-1-l, which one ``as_strided`` view expresses without copying.
    """
    rows = stop - start
    raw = torch.matmul(q_v, p[:, :, t - stop : 2 * t - 1 - start].transpose(-2, -1)).contiguous()
    bsz, heads, _, width = raw.shape
    return raw.as_strided(
        (bsz, heads, rows, t), (heads * rows * width, rows * width, width - 1, 1), storage_offset=rows - 1
    )


def _visibility_mask(
    key_padding: torch.Tensor | None, context: tuple[int, int], start: int, stop: int, t: int, device
) -> torch.Tensor | None:
    """Boolean [B|1, 1, rows, T], True where a query must not see a key.

    Only keys are masked for padding: a padded query row still attends to valid keys, which keeps
    every row finite (no all-masked softmax) and cannot reach valid frames' outputs.
    """
    mask = None
    if key_padding is not None and bool(key_padding.any()):
        mask = key_padding[:, None, None, :]
    left, right = context
    if left >= 0 or right >= 0:
        i = torch.arange(start, stop, device=device)[:, None]
        j = torch.arange(t, device=device)[None, :]
        far = torch.zeros(stop - start, t, dtype=torch.bool, device=device)
        if left >= 0:
            far |= j < i - left
        if right >= 0:
            far |= j > i + right
        far = far[None, None]
        mask = far if mask is None else (mask | far)
    return mask
