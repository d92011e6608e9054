"""The upstream half of every task: a NEST encoder plus how its layers are combined (s3prl's split).

Frozen encoders expose a learned combination of layers; fine-tuned ones expose their last layer.
A frozen encoder with ``cache_features`` runs once, into the feature cache (``feature_cache.py``);
its ``Upstream`` then holds no encoder at all, only the ``LayerAggregator`` with the learnable layer
weights, and reads the stored layers (``forward_cached``). Run checkpoints shrink accordingly.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from .checkpoint import NemoCheckpoint, load_nemo, split_state_dict
from .encoder import NestEncoder
from .encoder.config import ConformerConfig, MelConfig, frame_shift
from .encoder.specaug import SpecAugment
from .experiment import EncoderSetup
from .extract import Utterance, parse_layers
from .feature_cache import CacheStats, FeatureCache, feature_key
from .task import EncoderView

log = logging.getLogger(__name__)


class LayerAggregator(nn.Module):
    """Combine [L, B, T, D] layer outputs into [B, T, D]; see ``EncoderSetup`` for the protocols."""

    def __init__(
        self, n_layers: int, dim: int, protocol: str = "superb", layer_norm: bool = False, temperature: float = 1.0
    ):
        super().__init__()
        if protocol not in ("superb", "nemo", "last"):
            raise ValueError(f"aggregation={protocol!r}: expected 'superb', 'nemo' or 'last'")
        if not temperature > 0:
            raise ValueError(f"layer_temperature={temperature!r}: must be > 0")
        self.protocol, self.temperature = protocol, float(temperature)
        init = torch.zeros(n_layers) if protocol == "superb" else torch.full((n_layers,), 1.0 / n_layers)
        self.weights = nn.Parameter(init, requires_grad=protocol != "last")
        self.norm = nn.LayerNorm(dim, elementwise_affine=False) if layer_norm else None

    def normalised_weights(self) -> torch.Tensor:
        return torch.softmax(self.weights / self.temperature, 0) if self.protocol == "superb" else self.weights

    def forward(self, layers: torch.Tensor) -> torch.Tensor:
        if self.protocol == "last":
            return layers[-1]
        if self.norm is not None:
            layers = self.norm(layers)
        return torch.einsum("l,lbtd->btd", self.normalised_weights().to(layers.dtype), layers)


@dataclass(frozen=True)
class EncoderInfo:
    """What a run records and sizes its head by; known from the checkpoint without building the model."""

    source: str | None
    checkpoint_sha256: str | None
    n_layers: int
    d_model: int
    frame_shift: float  # seconds per output frame (mel hop x subsampling: 80 ms for NEST)

    @classmethod
    def of(cls, encoder: NestEncoder) -> EncoderInfo:
        return cls(encoder.source, encoder.checkpoint_sha256, encoder.n_layers, encoder.d_model, encoder.frame_shift)


class Upstream(nn.Module):
    """audio [B, S], lengths [B] -> features [B, T, D], frame lengths [B].

    With ``encoder=None`` (a frozen encoder whose layers are cached; ``info`` then describes it)
    the input is the stored layers instead: ``forward_cached(layers [B, L, T, D], frames [B])``.
    """

    def __init__(self, encoder: NestEncoder | None, setup: EncoderSetup, info: EncoderInfo | None = None):
        super().__init__()
        if setup.mode not in ("frozen", "finetune"):
            raise ValueError(f"EncoderSetup.mode={setup.mode!r}: expected 'frozen' or 'finetune'")
        if encoder is None and (setup.mode != "frozen" or info is None):
            raise ValueError("only a frozen encoder, described by `info`, can be replaced by cached features")
        self.encoder = encoder
        self.info = info or EncoderInfo.of(encoder)
        self.from_cache = encoder is None
        self.frozen = setup.mode == "frozen"
        self.augment = (
            SpecAugment(setup.freq_masks, setup.freq_width, setup.time_masks, setup.time_width)
            if (setup.freq_masks or setup.time_masks) and not self.from_cache
            else None
        )
        n_layers, dim = self.info.n_layers, self.info.d_model
        if self.frozen:
            self.layer_ids = parse_layers(setup.layers, n_layers)
            self.aggregator = LayerAggregator(
                len(self.layer_ids), dim, setup.aggregation, setup.layer_norm, setup.layer_temperature
            )
            if encoder is not None:
                encoder.requires_grad_(False)
        else:
            self.layer_ids = [n_layers - 1]
            self.aggregator = LayerAggregator(1, dim, "last")

    @property
    def feature_dim(self) -> int:
        return self.info.d_model

    @property
    def view(self) -> EncoderView:
        """What the task's head may know of the encoder."""
        return EncoderView(self.info.d_model, self.info.n_layers, self.info.frame_shift)

    def encoder_parameters(self) -> list[nn.Parameter]:
        """The encoder weights that train (none when frozen or cached): they get ``encoder_lr``."""
        return [] if self.encoder is None else [p for p in self.encoder.parameters() if p.requires_grad]

    def train(self, mode: bool = True):
        super().train(mode)
        if self.frozen and self.encoder is not None:
            self.encoder.eval()  # no dropout, batch-norm statistics stay the checkpoint's
        return self

    def forward(self, audio: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.from_cache:
            raise RuntimeError("this upstream reads cached layers: call forward_cached(layers, lengths)")
        if self.frozen:
            with torch.no_grad():
                out = self.encoder(audio, lengths, layers=self.layer_ids, augment=self.augment)
        else:
            out = self.encoder(audio, lengths, layers=self.layer_ids, augment=self.augment)
        return self.aggregator(out.stacked()), out.lengths

    def forward_cached(self, layers: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """layers [B, L, T, D] (``data.make_feature_collate``), frames [B] -> features [B, T, D], frames [B]."""
        if layers.shape[1] != len(self.layer_ids):
            raise ValueError(f"cached features hold {layers.shape[1]} layers, expected {len(self.layer_ids)}")
        return self.aggregator(layers.transpose(0, 1)), lengths

    def layer_weights(self) -> dict[int, float]:
        return {i: float(w) for i, w in zip(self.layer_ids, self.aggregator.normalised_weights().detach(), strict=True)}


def build_upstream(setup: EncoderSetup) -> Upstream:
    return Upstream(build_encoder(setup), setup)


def build_encoder(setup: EncoderSetup, ckpt: NemoCheckpoint | None = None) -> NestEncoder:
    """The checkpoint's encoder with NeMo ``init_from_pretrained`` include/exclude filtering applied."""
    ckpt = ckpt or load_nemo(setup.checkpoint, cache_dir=setup.cache_dir)
    encoder = NestEncoder.from_nemo_config(ckpt.config)
    parts, _ = split_state_dict(ckpt.state_dict)
    state = _nemo_state(parts)
    chosen = select_weights(state, setup.init_include, setup.init_exclude)
    if len(chosen) == len(state):
        encoder.load_nemo_state_dict(parts.get("preprocessor", {}), parts.get("encoder", {}), origin=str(ckpt.path))
    else:
        _load_partial(encoder, chosen, str(ckpt.path))
    encoder.checkpoint_sha256, encoder.source = ckpt.sha256, setup.checkpoint
    return encoder


def build_cached_upstream(
    setup: EncoderSetup,
    todo: Sequence[tuple[float, Utterance]],
    *,
    seed: int = 0,
    device: str | torch.device = "cpu",
    batch_size: int = 16,
    progress: bool = True,
) -> tuple[Upstream, FeatureCache, CacheStats]:
    """A frozen upstream over cached layers, after computing the ``(seconds, utterance)`` pairs not cached.

    The checkpoint is read (its sha256 is part of the key) but the encoder is built only for cache
    misses. Building it draws no numbers from the caller's random stream, so a run's head starts
    from the same weights whether the cache was cold or warm.
    """
    ckpt = load_nemo(setup.checkpoint, cache_dir=setup.cache_dir)
    mel, conformer = _configs(ckpt)
    layer_ids = parse_layers(setup.layers, conformer.n_layers)
    shift = frame_shift(mel, conformer)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # fresh (excluded) weights of a partial init are then reproducible
        built = build_encoder(setup, ckpt) if _partial_init(setup, ckpt) else None
        weights_id = ckpt.sha256 if built is None else "weights:" + _weights_sha256(built)
        device_class = torch.device(device).type
        precision = "tf32" if device_class == "cuda" and torch.backends.cuda.matmul.allow_tf32 else "float32"
        key = feature_key(weights_id, layer_ids, mel, conformer, setup.cache_dtype, device_class, precision)
        cache = FeatureCache(key, setup.cache_dir, setup.cache_dtype)
        meta = {
            "checkpoint": setup.checkpoint,
            "checkpoint_sha256": ckpt.sha256,
            "weights": weights_id,
            "init_include": list(setup.init_include),
            "init_exclude": list(setup.init_exclude),
            "layers": layer_ids,
            "mel": asdict(mel),
            "conformer": asdict(conformer),
            "dtype": setup.cache_dtype,
            "device_class": device_class,
            "precision": precision,
            "array": f"<fp[:2]>/<fp>.npy: {setup.cache_dtype} [n_layers, T, D], valid frames only",
        }
        stats = cache.fill(
            todo,
            lambda: built if built is not None else build_encoder(setup, ckpt),
            layer_ids,
            meta=meta,
            device=device,
            batch_size=batch_size,
            progress=progress,
            bytes_per_second=len(layer_ids) * conformer.d_model * np.dtype(setup.cache_dtype).itemsize / shift,
        )
    info = EncoderInfo(setup.checkpoint, ckpt.sha256, conformer.n_layers, conformer.d_model, shift)
    return Upstream(None, setup, info), cache, stats


def init_kind(setup: EncoderSetup) -> str:
    """How ``init_include``/``init_exclude`` start the encoder: ``'checkpoint'`` (every weight loaded),
    ``'random'`` (no ``encoder.*`` weight loaded: a fresh encoder of the checkpoint's shape, drawn from
    the run's seed) or ``'partial'``. Recorded with every result: two runs of one checkpoint can differ
    in it, and the leaderboard must not put them in one row."""
    if not setup.init_include and not setup.init_exclude:
        return "checkpoint"
    state = _nemo_state(split_state_dict(load_nemo(setup.checkpoint, cache_dir=setup.cache_dir).state_dict)[0])
    chosen = select_weights(state, setup.init_include, setup.init_exclude)
    if len(chosen) == len(state):
        return "checkpoint"
    return "partial" if any(k.startswith("encoder.") for k in chosen) else "random"


def select_weights(state: dict[str, torch.Tensor], include: Sequence[str], exclude: Sequence[str]) -> dict:
    """NeMo ``init_from_pretrained_model`` filtering: substring include (all if empty), then exclude."""
    keep = {k: v for k, v in state.items() if not include or any(s in k for s in include)}
    return {k: v for k, v in keep.items() if not any(s in k for s in exclude)}


def _nemo_state(parts: dict[str, dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    state = {f"preprocessor.{k}": v for k, v in parts.get("preprocessor", {}).items()}
    state.update({f"encoder.{k}": v for k, v in parts.get("encoder", {}).items()})
    return state


def _configs(ckpt: NemoCheckpoint) -> tuple[MelConfig, ConformerConfig]:
    """The preprocessing and encoder configs, without building (and randomly initialising) the model."""
    for block in ("preprocessor", "encoder"):
        if block not in ckpt.config:
            raise ValueError(f"{ckpt.path}: model config has no '{block}' block (keys: {sorted(ckpt.config)})")
    return MelConfig.from_nemo(ckpt.config["preprocessor"]), ConformerConfig.from_nemo(ckpt.config["encoder"])


def _partial_init(setup: EncoderSetup, ckpt: NemoCheckpoint) -> bool:
    """Whether include/exclude leave some weights at their fresh initialisation."""
    state = _nemo_state(split_state_dict(ckpt.state_dict)[0])
    return len(select_weights(state, setup.init_include, setup.init_exclude)) != len(state)


def _weights_sha256(encoder: NestEncoder) -> str:
    h = hashlib.sha256()
    for name, tensor in sorted(encoder.nemo_state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


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
