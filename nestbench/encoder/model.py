"""``NestEncoder``: waveform in, every conformer layer's output out — the upstream of every task.

Built from a checkpoint's own ``model_config.yaml`` so any NEST size loads; only the
preprocessor and encoder weights are used (the SSL quantizer/decoder/loss are ignored).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from .config import ConformerConfig, MelConfig, frame_shift
from .conformer import ConformerEncoder
from .mel import MelSpectrogram

log = logging.getLogger(__name__)

_NEMO_PREPROCESSOR_PREFIX = "featurizer."


@dataclass
class EncoderOutput:
    """``layers[k]`` is [B, T, D] for layer ``layer_ids[k]`` (0-based); frames past ``lengths[b]`` are padding."""

    layers: list[torch.Tensor]
    lengths: torch.Tensor
    layer_ids: list[int]

    def stacked(self) -> torch.Tensor:
        """[n_layers, B, T, D]."""
        return torch.stack(self.layers, dim=0)


class NestEncoder(nn.Module):
    def __init__(self, mel: MelConfig, conformer: ConformerConfig):
        super().__init__()
        if mel.features != conformer.feat_in:
            raise ValueError(f"preprocessor.features={mel.features} but encoder.feat_in={conformer.feat_in}")
        self.preprocessor = MelSpectrogram(mel)
        self.encoder = ConformerEncoder(conformer)
        self.checkpoint_sha256: str | None = None
        self.source: str | None = None

    # -- facts callers need -------------------------------------------------------------------
    @property
    def mel_config(self) -> MelConfig:
        return self.preprocessor.cfg

    @property
    def conformer_config(self) -> ConformerConfig:
        return self.encoder.cfg

    @property
    def sample_rate(self) -> int:
        return self.mel_config.sample_rate

    @property
    def n_layers(self) -> int:
        return self.encoder.n_layers

    @property
    def d_model(self) -> int:
        return self.conformer_config.d_model

    @property
    def frame_shift(self) -> float:
        """Seconds between output frames (80 ms for NEST)."""
        return frame_shift(self.mel_config, self.conformer_config)

    @property
    def min_samples(self) -> int:
        """Shortest input that yields at least two analysis frames (one 25 ms window plus a hop)."""
        return self.mel_config.win_length + self.mel_config.hop_length

    # -- compute ------------------------------------------------------------------------------
    def forward(
        self,
        audio: torch.Tensor,
        lengths: torch.Tensor | None = None,
        layers: Sequence[int] | None = None,
        augment: nn.Module | None = None,
    ) -> EncoderOutput:
        """audio [B, S] float at ``sample_rate``; lengths [B] in samples (default: all S).

        ``augment(features [B, F, T], frames [B])`` runs between the mel front end and the
        encoder (SpecAugment while fine-tuning).
        """
        if audio.dim() == 1:
            audio = audio.unsqueeze(0)
        if lengths is None:
            lengths = torch.full((audio.shape[0],), audio.shape[1], dtype=torch.long, device=audio.device)
        short = (lengths < self.min_samples).nonzero().flatten().tolist()
        if short:
            raise ValueError(
                f"batch items {short} are shorter than {self.min_samples} samples "
                f"({self.min_samples / self.sample_rate * 1000:.0f} ms): too short to encode"
            )
        features, frames = self.preprocessor(audio, lengths)
        if augment is not None:
            features = augment(features, frames)
        outs, out_lengths = self.encoder(features, frames, layers)
        ids = list(range(self.n_layers)) if layers is None else [i % self.n_layers for i in layers]
        return EncoderOutput(outs, out_lengths, ids)

    # -- NeMo checkpoints ---------------------------------------------------------------------
    @classmethod
    def from_nemo_config(cls, model_config: dict) -> NestEncoder:
        for block in ("preprocessor", "encoder"):
            if block not in model_config:
                raise ValueError(f"model config has no '{block}' block (keys: {sorted(model_config)})")
        return cls(
            MelConfig.from_nemo(model_config["preprocessor"]), ConformerConfig.from_nemo(model_config["encoder"])
        )

    @classmethod
    def from_pretrained(cls, source: str | Path, cache_dir: str | Path | None = None) -> NestEncoder:
        """Load a ``.nemo`` file, an unpacked ``.nemo`` folder, or a hub id (``nvidia/ssl_en_nest_large_v1.0``)."""
        from ..checkpoint import load_nemo, split_state_dict

        ckpt = load_nemo(source, cache_dir=cache_dir)
        model = cls.from_nemo_config(ckpt.config)
        parts, _ignored = split_state_dict(ckpt.state_dict)
        model.load_nemo_state_dict(parts.get("preprocessor", {}), parts.get("encoder", {}), origin=str(ckpt.path))
        model.checkpoint_sha256 = ckpt.sha256
        model.source = str(source)
        return model.eval()

    def load_nemo_state_dict(self, preprocessor: dict, encoder: dict, origin: str = "checkpoint") -> None:
        """Load NeMo-named tensors; window/filterbank fall back to our own when a checkpoint lacks them."""
        pre = {k.removeprefix(_NEMO_PREPROCESSOR_PREFIX): v for k, v in preprocessor.items()}
        pre = {k: v for k, v in pre.items() if k in ("window", "fb")}
        missing_pre = {"window", "fb"} - set(pre)
        if missing_pre:
            log.info(
                "%s has no preprocessor %s; using nestbench's own (identical up to float rounding)",
                origin,
                sorted(missing_pre),
            )
        self.preprocessor.load_state_dict({**self.preprocessor.state_dict(), **pre})
        result = self.encoder.load_state_dict(encoder, strict=False)
        problems = []
        if result.missing_keys:
            problems.append(
                f"missing encoder weights: {result.missing_keys[:8]}"
                + (f" (+{len(result.missing_keys) - 8} more)" if len(result.missing_keys) > 8 else "")
            )
        if result.unexpected_keys:
            problems.append(f"unexpected encoder weights: {result.unexpected_keys[:8]}")
        if problems:
            raise ValueError(f"{origin}: encoder weights do not match its config: " + "; ".join(problems))

    def nemo_config(self) -> dict:
        """The ``preprocessor`` + ``encoder`` blocks in NeMo's schema (for writing ``.nemo`` files)."""
        mel = asdict(self.mel_config)
        enc = asdict(self.conformer_config)
        enc["att_context_size"] = list(enc["att_context_size"])
        return {
            "sample_rate": self.sample_rate,
            "preprocessor": {"_target_": "nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor", **mel},
            "encoder": {"_target_": "nemo.collections.asr.modules.ConformerEncoder", **enc},
        }

    def nemo_state_dict(self) -> dict[str, torch.Tensor]:
        """Weights under NeMo's key names (``preprocessor.featurizer.*``, ``encoder.*``)."""
        out = {f"preprocessor.{_NEMO_PREPROCESSOR_PREFIX}{k}": v for k, v in self.preprocessor.state_dict().items()}
        out.update({f"encoder.{k}": v for k, v in self.encoder.state_dict().items()})
        return out
