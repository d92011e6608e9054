"""The FastConformer encoder stack (NeMo ``ConformerEncoder``), returning every layer's output.

Module and parameter names mirror NeMo's (``pre_encode``, ``layers.N.feed_forward1.linear1``,
``self_attn.linear_pos``, ``conv.depthwise_conv``, ``norm_out`` ...) so a NeMo state dict loads
with ``strict=True`` and a fine-tuned nestbench encoder can be written back in NeMo's layout.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from .attention import RelPositionSelfAttention, relative_positions
from .config import ConformerConfig
from .subsampling import DwStridingSubsampling


class FeedForward(nn.Module):
    def __init__(self, d_model: int, d_ff: int, dropout: float, use_bias: bool):
        super().__init__()
        self.linear1 = nn.Linear(d_model, d_ff, bias=use_bias)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(d_ff, d_model, bias=use_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear2(self.dropout(nn.functional.silu(self.linear1(x))))


class ConvModule(nn.Module):
    """Pointwise-GLU, depthwise conv, norm, Swish, pointwise; padded frames zeroed before the depthwise."""

    def __init__(self, d_model: int, kernel_size: int, norm_type: str, use_bias: bool):
        super().__init__()
        self.norm_type = norm_type
        self.pointwise_conv1 = nn.Conv1d(d_model, 2 * d_model, 1, bias=use_bias)
        self.depthwise_conv = nn.Conv1d(
            d_model, d_model, kernel_size, padding=(kernel_size - 1) // 2, groups=d_model, bias=use_bias
        )
        self.batch_norm = nn.BatchNorm1d(d_model) if norm_type == "batch_norm" else nn.LayerNorm(d_model)
        self.pointwise_conv2 = nn.Conv1d(d_model, d_model, 1, bias=use_bias)

    def forward(self, x: torch.Tensor, pad_mask: torch.Tensor | None) -> torch.Tensor:
        x = nn.functional.glu(self.pointwise_conv1(x.transpose(1, 2)), dim=1)
        if pad_mask is not None:
            x = x.masked_fill(pad_mask[:, None, :], 0.0)
        x = self.depthwise_conv(x)
        if self.norm_type == "layer_norm":
            x = self.batch_norm(x.transpose(1, 2)).transpose(1, 2)
        else:
            x = self.batch_norm(x)
        return self.pointwise_conv2(nn.functional.silu(x)).transpose(1, 2)


class ConformerLayer(nn.Module):
    """Macaron block: half FFN, self-attention, conv, half FFN, final LayerNorm."""

    def __init__(self, cfg: ConformerConfig, pos_bias_u=None, pos_bias_v=None):
        super().__init__()
        d, ff = cfg.d_model, cfg.d_model * cfg.ff_expansion_factor
        self.norm_feed_forward1 = nn.LayerNorm(d)
        self.feed_forward1 = FeedForward(d, ff, cfg.dropout, cfg.use_bias)
        self.norm_self_att = nn.LayerNorm(d)
        self.self_attn = RelPositionSelfAttention(
            d, cfg.n_heads, cfg.dropout_att, cfg.use_bias, pos_bias_u=pos_bias_u, pos_bias_v=pos_bias_v
        )
        self.norm_conv = nn.LayerNorm(d)
        self.conv = ConvModule(d, cfg.conv_kernel_size, cfg.conv_norm_type, cfg.use_bias)
        self.norm_feed_forward2 = nn.LayerNorm(d)
        self.feed_forward2 = FeedForward(d, ff, cfg.dropout, cfg.use_bias)
        self.norm_out = nn.LayerNorm(d)
        self.dropout = nn.Dropout(cfg.dropout)
        self.context = tuple(cfg.att_context_size)

    def forward(self, x, pos_emb, pad_mask):
        x = x + 0.5 * self.dropout(self.feed_forward1(self.norm_feed_forward1(x)))
        x = x + self.dropout(self.self_attn(self.norm_self_att(x), pos_emb, pad_mask, self.context))
        x = x + self.dropout(self.conv(self.norm_conv(x), pad_mask))
        x = x + 0.5 * self.dropout(self.feed_forward2(self.norm_feed_forward2(x)))
        return self.norm_out(x)


class ConformerEncoder(nn.Module):
    """Features [B, F, T] -> per-layer outputs, each [B, T', D], plus valid lengths [B]."""

    def __init__(self, cfg: ConformerConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        self.pre_encode = DwStridingSubsampling(cfg.feat_in, d, cfg.subsampling_factor, cfg.conv_channels)
        self.xscale = math.sqrt(d) if cfg.xscaling else None
        self.pre_dropout = nn.Dropout(cfg.dropout_pre_encoder)
        self.emb_dropout = nn.Dropout(cfg.dropout_emb)
        shared_u = shared_v = None
        if not cfg.untie_biases:
            d_k = d // cfg.n_heads
            self.pos_bias_u = shared_u = nn.Parameter(torch.zeros(cfg.n_heads, d_k))
            self.pos_bias_v = shared_v = nn.Parameter(torch.zeros(cfg.n_heads, d_k))
        self.layers = nn.ModuleList(ConformerLayer(cfg, shared_u, shared_v) for _ in range(cfg.n_layers))
        self.out_proj = nn.Linear(d, cfg.feat_out) if cfg.feat_out > 0 else None
        self.layer_drop = _stochastic_depth(cfg)

    @property
    def n_layers(self) -> int:
        return len(self.layers)

    def forward(
        self, features: torch.Tensor, lengths: torch.Tensor, layers: Sequence[int] | None = None
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Returns the outputs of ``layers`` (0-based; default all) in the order asked, and lengths.

        Layers past the deepest one asked for are not run. The last layer's output goes through
        ``out_proj`` when the config has ``feat_out`` (as NeMo's final output does).
        """
        wanted = list(range(self.n_layers)) if layers is None else [_check_layer(i, self.n_layers) for i in layers]
        x, lengths = self.pre_encode(features.transpose(1, 2), lengths)
        if self.xscale is not None:
            x = x * self.xscale
        t = x.shape[1]
        pos_emb = self.emb_dropout(relative_positions(t, self.cfg.d_model, x.device, x.dtype))
        x = self.pre_dropout(x)
        pad_mask = torch.arange(t, device=x.device)[None, :] >= lengths[:, None]
        captured: dict[int, torch.Tensor] = {}
        for i, layer in enumerate(self.layers[: max(wanted) + 1]):
            p = self.layer_drop[i] if self.training else 0.0
            if p > 0 and torch.rand(()) < p:
                pass  # dropped: identity
            elif p > 0:
                x = x + (layer(x, pos_emb, pad_mask) - x) / (1.0 - p)
            else:
                x = layer(x, pos_emb, pad_mask)
            captured[i] = x
        if self.out_proj is not None and self.n_layers - 1 in captured:
            captured[self.n_layers - 1] = self.out_proj(captured[self.n_layers - 1])
        return [captured[i] for i in wanted], lengths.long()


def _stochastic_depth(cfg: ConformerConfig) -> list[float]:
    """Per-layer drop probabilities as NeMo computes them (layers before ``start_layer`` never drop)."""
    n, start, p = cfg.n_layers, cfg.stochastic_depth_start_layer, cfg.stochastic_depth_drop_prob
    probs = [0.0] * min(start, n)
    rest = n - start
    if rest > 0:
        probs += [p * i / rest for i in range(1, rest + 1)] if cfg.stochastic_depth_mode == "linear" else [p] * rest
    return probs


def _check_layer(i: int, n: int) -> int:
    j = i + n if i < 0 else i
    if not 0 <= j < n:
        raise IndexError(f"layer {i} out of range: the encoder has {n} layers (0..{n - 1})")
    return j
