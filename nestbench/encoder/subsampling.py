"""FastConformer's depthwise-striding 8x subsampling (NeMo ``ConvSubsampling``, ``dw_striding``).

Layer indices match NeMo's ``pre_encode.conv.{0,2,3,5,6,...}`` so checkpoints load by name.
Padded time steps are zeroed before every conv so that a padded batch gives the same valid
frames as each utterance alone (NeMo's ``MaskedConvSequential`` does the same).
"""

from __future__ import annotations

import math

import torch
from torch import nn

_KERNEL, _STRIDE, _PAD = 3, 2, 1


def conv_out_length(lengths: torch.Tensor, repeats: int) -> torch.Tensor:
    for _ in range(repeats):
        lengths = torch.div(lengths + 2 * _PAD - _KERNEL, _STRIDE, rounding_mode="floor") + 1
    return lengths


class DwStridingSubsampling(nn.Module):
    """[B, T, F] features -> [B, T/factor, d_model]."""

    def __init__(self, feat_in: int, d_model: int, factor: int, channels: int):
        super().__init__()
        self.repeats = int(math.log2(factor))
        layers: list[nn.Module] = [nn.Conv2d(1, channels, _KERNEL, _STRIDE, _PAD), nn.ReLU()]
        for _ in range(self.repeats - 1):
            layers += [
                nn.Conv2d(channels, channels, _KERNEL, _STRIDE, _PAD, groups=channels),
                nn.Conv2d(channels, channels, 1),
                nn.ReLU(),
            ]
        self.conv = nn.Sequential(*layers)
        freq = int(conv_out_length(torch.tensor(feat_in), self.repeats))
        self.out = nn.Linear(channels * freq, d_model)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.unsqueeze(1)  # [B, 1, T, F]
        for layer in self.conv:
            x = _zero_padded_time(x, lengths)
            x = layer(x)
            if isinstance(layer, nn.Conv2d) and layer.stride[0] != 1:
                lengths = conv_out_length(lengths, 1)
        x = _zero_padded_time(x, lengths)
        b, c, t, f = x.shape
        x = self.out(x.transpose(1, 2).reshape(b, t, c * f))
        return x, lengths


def _zero_padded_time(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    t = x.shape[2]
    if bool((lengths >= t).all()):
        return x
    keep = torch.arange(t, device=x.device)[None, :] < lengths[:, None]
    return x * keep[:, None, :, None].to(x.dtype)
