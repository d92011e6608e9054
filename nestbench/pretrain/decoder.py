"""Linear softmax head over the encoder output (NeMo ``MultiSoftmaxDecoder``).

Why only a linear layer: BEST-RQ/NEST keep the prediction head weak so that the encoder, not the
head, has to model the targets. A kernel-1 ``Conv1d`` is NeMo's linear layer over [B, D, T], so the
weights keep NeMo's names and shapes under ``decoder.``:

* ``decoder_layers.0.weight``: [num_classes * num_decoders, feat_in, 1] (Xavier-uniform)
* ``decoder_layers.0.bias``:   [num_classes * num_decoders] (NEST sets ``use_bias: true``)

Output layout is NeMo's: log-probs [B, T', num_classes, num_decoders] (classes before books; channel
``c * num_decoders + h`` is class c of book h), or [B, T', num_classes] with ``squeeze_single``.
"""

from __future__ import annotations

import torch
from torch import nn

_TARGET = "nemo.collections.asr.modules.MultiSoftmaxDecoder"


class MultiSoftmaxDecoder(nn.Module):
    def __init__(
        self,
        feat_in: int = 512,
        num_classes: int = 8192,
        num_decoders: int = 1,
        use_bias: bool = True,
        squeeze_single: bool = False,
    ):
        super().__init__()
        if feat_in < 1 or num_classes < 2 or num_decoders < 1:
            raise ValueError(f"bad decoder sizes: feat_in={feat_in}, num_classes={num_classes}, books={num_decoders}")
        self.feat_in = feat_in
        self.num_classes = num_classes
        self.num_decoders = num_decoders
        self.use_bias = use_bias
        self.squeeze_single = squeeze_single
        self.decoder_layers = nn.Sequential(
            nn.Conv1d(feat_in, num_classes * num_decoders, kernel_size=1, bias=use_bias)
        )
        nn.init.xavier_uniform_(self.decoder_layers[0].weight)  # NeMo's init_weights; the bias keeps torch's init

    def forward(self, encoder_output: torch.Tensor) -> torch.Tensor:
        """encoder_output [B, D, T'] -> log-probs [B, T', num_classes, num_decoders]."""
        logits = self.decoder_layers(encoder_output).transpose(1, 2)
        logits = logits.reshape(logits.shape[0], logits.shape[1], self.num_classes, self.num_decoders)
        if self.squeeze_single and self.num_decoders == 1:
            logits = logits.squeeze(-1)
        return torch.log_softmax(logits, dim=2)

    def nemo_config(self) -> dict:
        return {
            "_target_": _TARGET,
            "feat_in": self.feat_in,
            "num_classes": self.num_classes,
            "num_decoders": self.num_decoders,
            "squeeze_single": self.squeeze_single,
            "use_bias": self.use_bias,
        }
