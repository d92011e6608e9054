"""The upstream half of every task: a NEST encoder plus how its layers are combined (s3prl's split).

Frozen encoders expose a learned combination of layers; fine-tuned ones expose their last layer.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
from torch import nn

from .checkpoint import load_nemo, split_state_dict
from .encoder import NestEncoder
from .encoder.specaug import SpecAugment
from .experiment import EncoderSetup
from .extract import parse_layers

log = logging.getLogger(__name__)


class LayerAggregator(nn.Module):
    """Combine [L, B, T, D] layer outputs into [B, T, D]; see ``EncoderSetup`` for the protocols."""

    def __init__(self, n_layers: int, dim: int, protocol: str = "superb", layer_norm: bool = False):
        super().__init__()
        if protocol not in ("superb", "nemo", "last"):
            raise ValueError(f"aggregation={protocol!r}: expected 'superb', 'nemo' or 'last'")
        self.protocol = protocol
        init = torch.zeros(n_layers) if protocol == "superb" else torch.full((n_layers,), 1.0 / n_layers)
        self.weights = nn.Parameter(init, requires_grad=protocol != "last")
        self.norm = nn.LayerNorm(dim, elementwise_affine=False) if layer_norm else None

    def normalised_weights(self) -> torch.Tensor:
        return torch.softmax(self.weights, 0) if self.protocol == "superb" else self.weights

    def forward(self, layers: torch.Tensor) -> torch.Tensor:
        if self.protocol == "last":
            return layers[-1]
        if self.norm is not None:
            layers = self.norm(layers)
        return torch.einsum("l,lbtd->btd", self.normalised_weights().to(layers.dtype), layers)


class Upstream(nn.Module):
    """audio [B, S], lengths [B] -> features [B, T, D], frame lengths [B]."""

    def __init__(self, encoder: NestEncoder, setup: EncoderSetup):
        super().__init__()
        self.encoder = encoder
        self.frozen = setup.mode == "frozen"
        if setup.mode not in ("frozen", "finetune"):
            raise ValueError(f"EncoderSetup.mode={setup.mode!r}: expected 'frozen' or 'finetune'")
        self.augment = (
            SpecAugment(setup.freq_masks, setup.freq_width, setup.time_masks, setup.time_width)
            if setup.freq_masks or setup.time_masks
            else None
        )
        if self.frozen:
            self.layer_ids = parse_layers(setup.layers, encoder.n_layers)
            self.aggregator = LayerAggregator(len(self.layer_ids), encoder.d_model, setup.aggregation, setup.layer_norm)
            encoder.requires_grad_(False)
        else:
            self.layer_ids = [encoder.n_layers - 1]
            self.aggregator = LayerAggregator(1, encoder.d_model, "last")

    @property
    def feature_dim(self) -> int:
        return self.encoder.d_model

    def train(self, mode: bool = True):
        super().train(mode)
        if self.frozen:
            self.encoder.eval()  # no dropout, batch-norm statistics stay the checkpoint's
        return self

    def forward(self, audio: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.frozen:
            with torch.no_grad():
                out = self.encoder(audio, lengths, layers=self.layer_ids, augment=self.augment)
        else:
            out = self.encoder(audio, lengths, layers=self.layer_ids, augment=self.augment)
        return self.aggregator(out.stacked()), out.lengths

    def layer_weights(self) -> dict[int, float]:
        return {i: float(w) for i, w in zip(self.layer_ids, self.aggregator.normalised_weights(), strict=True)}


def build_upstream(setup: EncoderSetup) -> Upstream:
    ckpt = load_nemo(setup.checkpoint, cache_dir=setup.cache_dir)
    encoder = NestEncoder.from_nemo_config(ckpt.config)
    parts, _ = split_state_dict(ckpt.state_dict)
    state = {f"preprocessor.{k}": v for k, v in parts.get("preprocessor", {}).items()}
    state.update({f"encoder.{k}": v for k, v in parts.get("encoder", {}).items()})
    chosen = select_weights(state, setup.init_include, setup.init_exclude)
    if len(chosen) == len(state):
        encoder.load_nemo_state_dict(parts.get("preprocessor", {}), parts.get("encoder", {}), origin=str(ckpt.path))
    else:
        _load_partial(encoder, chosen, str(ckpt.path))
    encoder.checkpoint_sha256, encoder.source = ckpt.sha256, setup.checkpoint
    return Upstream(encoder, setup)


def select_weights(state: dict[str, torch.Tensor], include: Sequence[str], exclude: Sequence[str]) -> dict:
    """NeMo ``init_from_pretrained_model`` filtering: substring include (all if empty), then exclude."""
    keep = {k: v for k, v in state.items() if not include or any(s in k for s in include)}
    return {k: v for k, v in keep.items() if not any(s in k for s in exclude)}


def _load_partial(encoder: NestEncoder, chosen: dict[str, torch.Tensor], origin: str) -> None:
    own = encoder.nemo_state_dict()
    unknown = sorted(set(chosen) - set(own))
    if unknown:
        raise ValueError(f"{origin}: weights {unknown[:5]} do not exist in the model built from its config")
    pre = {k.removeprefix("preprocessor."): v for k, v in own.items() if k.startswith("preprocessor.")}
    enc = {k.removeprefix("encoder."): v for k, v in own.items() if k.startswith("encoder.")}
    for k, v in chosen.items():
        (pre if k.startswith("preprocessor.") else enc)[k.split(".", 1)[1]] = v
    encoder.load_nemo_state_dict(pre, enc, origin=origin)
    log.info("initialised %d of %d tensors from %s (include/exclude filters)", len(chosen), len(own), origin)
