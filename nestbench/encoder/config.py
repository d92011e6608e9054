"""Typed views of the two NeMo config blocks that decide NEST's numbers.

NEST checkpoints carry their own ``model_config.yaml``; we read the ``preprocessor`` and
``encoder`` blocks into frozen dataclasses so that every size (Large 512x18, XLarge 1024x24,
custom small ones) is built from its own config, and so that a value we do not implement is
refused loudly instead of silently producing different numbers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# Keys NeMo configs carry that cannot change inference numbers whatever their value: the class
# path (checked separately), training-only augmentation and sync settings, buffer sizes and
# kernel choices that compute the same function. Any other key must be a field of the dataclass
# below or a ``_DEFAULT_ONLY`` key; an unknown key is refused, as it may be a feature we lack.
_HARMLESS_MEL_KEYS = {
    "_target_",
    "use_grads",  # whether gradients flow through the featurizer
    "rng",  # seed of the narrow-band augmentation, which is off (nb_augmentation_prob)
    "nb_max_freq",  # likewise
    "max_duration",  # pre-allocation hint
}
_HARMLESS_ENCODER_KEYS = {
    "_target_",
    "pos_emb_max_len",  # positional table size, extended on demand
    "subsampling_conv_chunking_factor",  # memory chunking of the same convolution
    "att_context_probs",  # training-time sampling of multi-lookahead contexts
    "sync_max_audio_length",  # DDP bookkeeping
    "use_pytorch_sdpa",  # attention kernel choice
    "use_pytorch_sdpa_backends",
}

# Keys for features nestbench does not implement: accepted only with NeMo's value that turns the
# feature off, because any other value changes the outputs.
_DEFAULT_ONLY_MEL = {
    "stft_exact_pad": False,
    "stft_conv": False,
    "nb_augmentation_prob": 0.0,
    "use_torchaudio": False,
}
_DEFAULT_ONLY_ENCODER = {
    "reduction": None,
    "reduction_position": None,
    "reduction_factor": 1,
    "global_tokens": 0,
    "global_tokens_spacing": 1,
    "global_attn_separate": False,
}


class ConfigError(ValueError):
    """A NeMo config value nestbench cannot reproduce exactly."""


@dataclass(frozen=True)
class MelConfig:
    """NeMo's ``AudioToMelSpectrogramPreprocessor`` as NEST configures it (defaults = NEST)."""

    sample_rate: int = 16000
    window_size: float = 0.025
    window_stride: float = 0.01
    window: str = "hann"
    normalize: str | None = "per_feature"
    n_fft: int = 512
    preemph: float | None = 0.97
    features: int = 80
    lowfreq: float = 0.0
    highfreq: float | None = None
    log: bool = True
    log_zero_guard_type: str = "add"
    log_zero_guard_value: float | str = 2.0**-24
    dither: float = 1e-5
    pad_to: int = 16
    pad_value: float = 0.0
    mag_power: float = 2.0
    mel_norm: str | None = "slaney"
    exact_pad: bool = False

    @property
    def win_length(self) -> int:
        return int(self.window_size * self.sample_rate)

    @property
    def hop_length(self) -> int:
        return int(self.window_stride * self.sample_rate)

    @classmethod
    def from_nemo(cls, cfg: Mapping[str, Any]) -> MelConfig:
        cfg = dict(cfg)
        target = cfg.get("_target_", "")
        if target and not target.endswith("AudioToMelSpectrogramPreprocessor"):
            raise ConfigError(f"preprocessor._target_={target!r}: only AudioToMelSpectrogramPreprocessor is supported")
        if cfg.pop("frame_splicing", 1) != 1:
            raise ConfigError("preprocessor.frame_splicing != 1 is not supported")
        sr = int(cfg.pop("sample_rate", 16000))
        if "n_window_size" in cfg:
            cfg["window_size"] = cfg.pop("n_window_size") / sr
        if "n_window_stride" in cfg:
            cfg["window_stride"] = cfg.pop("n_window_stride") / sr
        if cfg.get("n_fft") is None:
            cfg.pop("n_fft", None)
        cfg["sample_rate"] = sr
        mel = _build(cls, cfg, _HARMLESS_MEL_KEYS, _DEFAULT_ONLY_MEL, "preprocessor")
        if mel.normalize not in ("per_feature", "all_features", None, "None"):
            raise ConfigError(f"preprocessor.normalize={mel.normalize!r} is not supported")
        if mel.window not in ("hann", "hamming", "blackman", "bartlett", "none", None):
            raise ConfigError(f"preprocessor.window={mel.window!r} is not supported")
        if mel.pad_to == "max":
            raise ConfigError("preprocessor.pad_to='max' is not supported")
        return mel


@dataclass(frozen=True)
class ConformerConfig:
    """NeMo's ``ConformerEncoder`` hyper-parameters (defaults = NEST-L)."""

    feat_in: int = 80
    n_layers: int = 18
    d_model: int = 512
    n_heads: int = 8
    feat_out: int = -1
    subsampling: str = "dw_striding"
    subsampling_factor: int = 8
    subsampling_conv_channels: int = 256
    causal_downsampling: bool = False
    ff_expansion_factor: int = 4
    self_attention_model: str = "rel_pos"
    att_context_size: tuple[int, int] = (-1, -1)
    att_context_style: str = "regular"
    xscaling: bool = True
    untie_biases: bool = True
    conv_kernel_size: int = 9
    conv_norm_type: str = "batch_norm"
    conv_context_size: Any = None
    use_bias: bool = True
    dropout: float = 0.1
    dropout_pre_encoder: float = 0.1
    dropout_emb: float = 0.0
    dropout_att: float = 0.1
    stochastic_depth_drop_prob: float = 0.0
    stochastic_depth_mode: str = "linear"
    stochastic_depth_start_layer: int = 1

    @property
    def conv_channels(self) -> int:
        return self.d_model if self.subsampling_conv_channels == -1 else self.subsampling_conv_channels

    @classmethod
    def from_nemo(cls, cfg: Mapping[str, Any]) -> ConformerConfig:
        cfg = dict(cfg)
        target = cfg.get("_target_", "")
        if target and not target.endswith("ConformerEncoder"):
            raise ConfigError(f"encoder._target_={target!r}: only ConformerEncoder is supported")
        if "att_context_size" in cfg:
            ctx = cfg["att_context_size"]
            if ctx and isinstance(ctx[0], (list, tuple)):
                # Multi-lookahead models list several contexts; the first is the inference default.
                ctx = ctx[0]
            cfg["att_context_size"] = tuple(int(c) for c in ctx)
        enc = _build(cls, cfg, _HARMLESS_ENCODER_KEYS, _DEFAULT_ONLY_ENCODER, "encoder")
        checks = {
            "subsampling": (enc.subsampling, ("dw_striding",)),
            "self_attention_model": (enc.self_attention_model, ("rel_pos",)),
            "causal_downsampling": (enc.causal_downsampling, (False,)),
            "conv_norm_type": (enc.conv_norm_type, ("batch_norm", "layer_norm")),
            "conv_context_size": (enc.conv_context_size, (None,)),
            "att_context_style": (enc.att_context_style, ("regular",)),
        }
        for key, (value, allowed) in checks.items():
            if value not in allowed:
                raise ConfigError(f"encoder.{key}={value!r} is not supported (supported: {list(allowed)})")
        if enc.subsampling_factor & (enc.subsampling_factor - 1) or enc.subsampling_factor < 2:
            raise ConfigError(f"encoder.subsampling_factor={enc.subsampling_factor} must be a power of 2")
        if not 0.0 <= enc.stochastic_depth_drop_prob < 1.0 or enc.stochastic_depth_mode not in ("linear", "uniform"):
            raise ConfigError("encoder.stochastic_depth_* must be a prob in [0, 1) with mode linear|uniform")
        if enc.d_model % enc.n_heads:
            raise ConfigError(f"encoder.d_model={enc.d_model} is not divisible by n_heads={enc.n_heads}")
        return enc


def _build(cls, cfg: dict, harmless: set[str], default_only: dict[str, Any], block: str):
    names = {f.name for f in dataclasses.fields(cls)}
    for key, value in cfg.items():
        if key in default_only and value != default_only[key]:
            raise ConfigError(
                f"{block}.{key}={value!r} is not supported (nestbench implements only {default_only[key]!r})"
            )
        if key not in names and key not in harmless and key not in default_only:
            raise ConfigError(
                f"{block}.{key}={value!r} is not supported: an unknown key may change the outputs "
                "(a key known to have no effect at inference belongs in nestbench/encoder/config.py's allow-list)"
            )
    return cls(**{k: v for k, v in cfg.items() if k in names})


def frame_shift(mel: MelConfig, conformer: ConformerConfig) -> float:
    """Seconds between encoder output frames: the mel hop times the subsampling (80 ms for NEST)."""
    return mel.window_stride * conformer.subsampling_factor
