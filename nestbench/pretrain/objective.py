"""``NestObjective``: NEST's self-supervised loss around a ``NestEncoder`` (NeMo ``EncDecDenoiseMaskedTokenPredModel``).

Why this order (NeMo's ``mask_position: pre_conv``): targets are the quantized *clean* mel, while the
encoder sees the *augmented* audio's mel with blocks of frames replaced by the mask embedding; the
decoder predicts the clean tokens of the masked steps. So the model must denoise and fill in.

The parts keep NeMo's module names, so ``state_dict_for_nemo`` gives the keys NeMo's model has:
``preprocessor.featurizer.{window,fb}``, ``encoder.*``, ``quantizer.{proj.weight,codebooks}``,
``mask_processor.mask_embedding``, ``decoder.decoder_layers.0.{weight,bias}`` (NeMo's loss and
spec-augment modules have no weights).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..encoder import NestEncoder
from .augmentation import MultiSpeakerNoiseAugmentation, NoiseSource
from .decoder import MultiSoftmaxDecoder
from .loss import MultiMLMLoss
from .masking import RandomBlockMasking
from .quantizer import RandomProjectionQuantizer

NEMO_MODEL_TARGET = "nemo.collections.asr.models.ssl_models.EncDecDenoiseMaskedTokenPredModel"
_SSL_PARTS = ("quantizer", "mask_processor", "decoder")
# top-level modules of NeMo's model that carry no weights we need (or none at all)
_NEMO_PARTS = ("preprocessor", "encoder", *_SSL_PARTS, "loss", "spec_augmentation")


def check_keys(
    expected: dict[str, torch.Tensor],
    given: dict[str, torch.Tensor],
    origin: str,
    *,
    unexpected: list[str] | None = None,
    optional: tuple[str, ...] = (),
) -> None:
    """Refuse ``given`` unless it has every expected key (``optional`` ones aside) at the expected shape;
    ``unexpected`` defaults to the given keys not expected."""
    missing = sorted(k for k in expected if k not in given and k not in optional)
    if unexpected is None:
        unexpected = sorted(k for k in given if k not in expected)
    mismatched = sorted(
        f"{k}: {tuple(given[k].shape)} != {tuple(v.shape)}"
        for k, v in expected.items()
        if k in given and tuple(given[k].shape) != tuple(v.shape)
    )
    if missing or unexpected or mismatched:
        raise CheckpointMismatchError(origin, missing, unexpected, mismatched)


class CheckpointMismatchError(ValueError):
    """A state dict that does not fit: lists the missing, unexpected and shape-mismatched keys."""

    def __init__(self, origin: str, missing: list[str], unexpected: list[str], mismatched: list[str]):
        self.missing, self.unexpected, self.mismatched = missing, unexpected, mismatched
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("shape-mismatched", mismatched)):
            if keys:
                more = f" (+{len(keys) - 12} more)" if len(keys) > 12 else ""
                parts.append(f"{label}: {keys[:12]}{more}")
        super().__init__(f"{origin} is not a NEST checkpoint of this architecture; " + "; ".join(parts))


@dataclass
class NestBatch:
    """What the encoder sees and what it must predict, for one batch."""

    tokens: torch.Tensor  # [B, T/8, books] quantized clean mel
    features: torch.Tensor  # [B, F, T] masked mel of the (augmented) input
    frames: torch.Tensor  # [B] valid mel frames
    masks: torch.Tensor  # [B, F, T] 1. where masked


class NestObjective(nn.Module):
    """``forward(audio [B, S], lengths [B])`` -> ``{"loss", "accuracy", "n_masked"}``.

    Parts default to NEST's config sized from the encoder (``num_classes``/``num_books``/``code_dim``
    are NEST's 8192/1/16 unless given). ``augmentation`` is optional: without it the encoder sees the
    clean input (NeMo's behaviour with prob 0).
    """

    def __init__(
        self,
        encoder: NestEncoder,
        num_classes: int = 8192,
        num_books: int = 1,
        code_dim: int = 16,
        quantizer: RandomProjectionQuantizer | None = None,
        masking: RandomBlockMasking | None = None,
        decoder: MultiSoftmaxDecoder | None = None,
        loss: MultiMLMLoss | None = None,
        augmentation: MultiSpeakerNoiseAugmentation | None = None,
    ):
        super().__init__()
        mel, conf = encoder.mel_config, encoder.conformer_config
        factor = conf.subsampling_factor
        self.nest = encoder
        self.quantizer = quantizer or RandomProjectionQuantizer(
            feat_in=mel.features, code_dim=code_dim, num_classes=num_classes, num_books=num_books,
            combine_time_steps=factor,
        )  # fmt: skip
        self.mask_processor = masking or RandomBlockMasking(feat_in=mel.features)
        d_out = conf.feat_out if conf.feat_out > 0 else conf.d_model
        self.decoder = decoder or MultiSoftmaxDecoder(
            feat_in=d_out, num_classes=self.quantizer.num_classes, num_decoders=self.quantizer.num_books
        )
        self.loss = loss or MultiMLMLoss(combine_time_steps=factor, num_decoders=self.quantizer.num_books)
        self.augmentation = augmentation
        self._check_consistent(mel.features, d_out, factor)

    def _check_consistent(self, features: int, d_out: int, factor: int) -> None:
        q, m, d, loss = self.quantizer, self.mask_processor, self.decoder, self.loss
        problems = {
            "quantizer.feat_in vs mel features": (q.feat_in, features),
            "mask_processor.feat_in vs mel features": (m.feat_in, features),
            "decoder.feat_in vs encoder output": (d.feat_in, d_out),
            "quantizer.combine_time_steps vs subsampling": (q.combine_time_steps, factor),
            "loss.combine_time_steps vs subsampling": (loss.combine_time_steps, factor),
            "decoder.num_classes vs quantizer.num_classes": (d.num_classes, q.num_classes),
            "decoder.num_decoders vs quantizer.num_books": (d.num_decoders, q.num_books),
            "loss.num_decoders vs quantizer.num_books": (loss.num_decoders, q.num_books),
        }
        bad = [f"{name}: {a} != {b}" for name, (a, b) in problems.items() if a != b]
        if bad:
            raise ValueError("NEST objective parts do not fit together: " + "; ".join(bad))

    # -- compute ----------------------------------------------------------------------------------
    def targets(self, audio: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Token ids [B, T/8, books] of the clean audio."""
        features, _ = self.nest.preprocessor(audio, lengths)
        return self.quantizer(features)

    def prepare(
        self, audio: torch.Tensor, lengths: torch.Tensor, generator: torch.Generator | None = None
    ) -> NestBatch:
        """Clean targets, then augment -> mel -> mask. ``generator`` drives augmentation and masking."""
        short = (lengths < self.nest.min_samples).nonzero().flatten().tolist()
        if short:
            raise ValueError(f"batch items {short} are shorter than {self.nest.min_samples} samples")
        clean, frames = self.nest.preprocessor(audio, lengths)
        tokens = self.quantizer(clean)
        if self.augmentation is not None:
            noisy, frames = self.nest.preprocessor(self.augmentation(audio, lengths, generator), lengths)
        else:
            noisy = clean
        features, masks = self.mask_processor(noisy, frames, generator)
        return NestBatch(tokens, features, frames, masks)

    def forward(
        self, audio: torch.Tensor, lengths: torch.Tensor, generator: torch.Generator | None = None
    ) -> dict[str, torch.Tensor | int]:
        batch = self.prepare(audio, lengths, generator)
        (encoded,), _ = self.nest.encoder(batch.features, batch.frames, [self.nest.n_layers - 1])
        log_probs = self.decoder(encoded.transpose(1, 2))
        out = self.loss(batch.masks, log_probs, batch.tokens)
        return {"loss": out.loss, "accuracy": out.accuracy, "n_masked": out.n_masked}

    # -- NeMo checkpoints ---------------------------------------------------------------------------
    @classmethod
    def from_nemo(
        cls,
        source: str | Path,
        *,
        noise: NoiseSource | None = None,
        augment: bool = True,
        cache_dir: str | Path | None = None,
    ) -> NestObjective:
        """Rebuild from a NEST ``.nemo``, ours or NeMo's (``nemo_export.load_nest_objective``), in eval mode."""
        from .nemo_export import load_nest_objective

        return load_nest_objective(source, noise=noise, augment=augment, cache_dir=cache_dir)

    def state_dict_for_nemo(self) -> dict[str, torch.Tensor]:
        """Every weight under NeMo ``EncDecDenoiseMaskedTokenPredModel``'s key names."""
        out = dict(self.nest.nemo_state_dict())
        for part in _SSL_PARTS:
            out.update({f"{part}.{k}": v for k, v in getattr(self, part).state_dict().items()})
        return out

    def nemo_config(self) -> dict:
        """Model config blocks for a ``.nemo`` writer (no data sets or optimiser: those are a run's business)."""
        cfg = self.nest.nemo_config()
        q = self.quantizer
        out = {
            "target": NEMO_MODEL_TARGET,
            "sample_rate": cfg["sample_rate"],
            "num_classes": q.num_classes,
            "num_books": q.num_books,
            "code_dim": q.code_dim,
            "squeeze_single": q.squeeze_single,
            "mask_position": "pre_conv",
            "preprocessor": cfg["preprocessor"],
            "spec_augment": {
                "_target_": "nemo.collections.asr.modules.SpectrogramAugmentation",
                "freq_masks": 0,
                "time_masks": 0,
                "freq_width": 27,
                "time_width": 0.05,
            },
            "masking": self.mask_processor.nemo_config(),
            "quantizer": q.nemo_config(),
            "encoder": cfg["encoder"],
            "decoder": self.decoder.nemo_config(),
            "loss": self.loss.nemo_config(),
        }
        if self.augmentation is not None:
            out["train_ds"] = {"batch_augmentor": self.augmentation.nemo_config()}
        return out

    def load_nemo_ssl_parts(self, state_dict: dict[str, torch.Tensor], origin: str = "checkpoint") -> None:
        """Load quantizer, mask embedding and decoder from a NeMo NEST state dict (full or SSL-only).

        Continued pretraining must keep the checkpoint's quantizer: new random codebooks would be new
        targets. A state dict of another architecture is refused with the keys that do not fit; keys
        of the preprocessor/encoder (loaded elsewhere) are ignored.
        """
        expected = {f"{p}.{k}": v for p in _SSL_PARTS for k, v in getattr(self, p).state_dict().items()}
        given = {k: v for k, v in state_dict.items() if k.split(".", 1)[0] in _SSL_PARTS}
        unexpected = sorted(k for k in state_dict if k not in expected and k.split(".", 1)[0] not in _NEMO_PARTS)
        unexpected += sorted(k for k in given if k not in expected)
        check_keys(expected, given, origin, unexpected=sorted(unexpected))
        for part in _SSL_PARTS:
            prefix = f"{part}."
            getattr(self, part).load_state_dict({k[len(prefix) :]: v for k, v in given.items() if k.startswith(prefix)})

    def load_nemo_state_dict(self, state_dict: dict[str, torch.Tensor], origin: str = "checkpoint") -> None:
        """Load everything ``state_dict_for_nemo`` writes (encoder, front end and SSL parts)."""
        from ..checkpoint import split_state_dict

        parts, _ = split_state_dict(state_dict)
        self.nest.load_nemo_state_dict(parts.get("preprocessor", {}), parts.get("encoder", {}), origin=origin)
        self.load_nemo_ssl_parts(state_dict, origin=origin)
