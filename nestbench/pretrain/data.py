"""Unlabelled audio for NEST pretraining, and the noise set of its denoising augmentation.

``UnlabelledAudio`` reads NeMo manifests or lhotse cut manifests (through ``nestbench.data.read_entries``,
so every audio header is checked before training and ids are unique; text is ignored). Items are
requested as ``(index, epoch)`` (``nestbench.data.BucketBatchSampler`` yields them), so the random crop
of a long file depends only on (seed, epoch, index) and a resumed run reads the same crops.

An utterance shorter than one masking block (``block_size`` mel hops plus one window, or the encoder's
``min_samples`` if larger) cannot hold a block: it is left out when the data set is built, counted in
``skipped`` and logged, so it never reaches the masking (which would fall back to a short block) or
the encoder (which refuses inputs under ``min_samples``).

``NoiseSet`` is the ``noise`` callable ``MultiSpeakerNoiseAugmentation`` accepts: it reads only the
window it needs from a clip drawn with the caller's generator, so nothing is loaded up front.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..audio import AudioError, AudioReader
from ..data import read_entries
from ..manifest import ManifestError
from .augmentation import MultiSpeakerNoiseAugmentation
from .objective import NestObjective

log = logging.getLogger(__name__)


def min_pretrain_samples(objective: NestObjective) -> int:
    """Fewest samples that hold one masking block: ``block_size`` hops + one window, at least ``min_samples``."""
    mel = objective.nest.mel_config
    block = objective.mask_processor.block_size * mel.hop_length + mel.win_length
    return max(block, objective.nest.min_samples)


class UnlabelledAudio(Dataset):
    """``dataset[(index, epoch)] -> {"id", "audio" [S] float32, "length"}`` over one or more manifests.

    ``durations`` (seconds after cropping) feed a ``BucketBatchSampler``; ``skipped`` lists the ids of
    utterances too short for ``min_samples`` (``n_skipped`` counts them).
    """

    def __init__(
        self,
        manifests: Sequence[str | Path] | str | Path,
        *,
        min_samples: int,
        max_seconds: float | None = None,
        sample_rate: int = 16000,
        seed: int = 0,
    ):
        if isinstance(manifests, (str, Path)):
            manifests = [manifests]
        if max_seconds is not None and max_seconds * sample_rate < min_samples:
            raise ValueError(f"max_seconds={max_seconds} crops below the {min_samples} samples one masking block needs")
        self.reader = AudioReader(sample_rate)
        self.sample_rate, self.min_samples, self.max_seconds, self.seed = sample_rate, min_samples, max_seconds, seed
        self.entries: list[dict] = []
        self.skipped: list[str] = []
        for manifest in manifests:
            for entry in read_entries(Path(manifest)):
                if math.floor(entry["duration"] * sample_rate) < min_samples:
                    self.skipped.append(entry["id"])
                else:
                    self.entries.append(entry)
        if self.skipped:
            log.warning(
                "skipped %d utterance(s) shorter than one masking block (%d samples, %.0f ms), e.g. %s",
                len(self.skipped),
                min_samples,
                1000 * min_samples / sample_rate,
                self.skipped[:5],
            )
        if not self.entries:
            raise ValueError(
                f"no utterance in {[str(m) for m in manifests]} is at least {min_samples} samples long "
                f"({len(self.skipped)} skipped as too short)"
            )

    @classmethod
    def for_objective(cls, manifests, objective: NestObjective, **kw) -> UnlabelledAudio:
        """Sized from ``objective``: its sample rate and ``min_pretrain_samples``."""
        return cls(manifests, min_samples=min_pretrain_samples(objective), sample_rate=objective.nest.sample_rate, **kw)

    @property
    def n_skipped(self) -> int:
        return len(self.skipped)

    @property
    def durations(self) -> list[float]:
        cap = self.max_seconds if self.max_seconds is not None else math.inf
        return [min(e["duration"], cap) for e in self.entries]

    def __len__(self) -> int:
        return len(self.entries)

    def window(self, index: int, epoch: int) -> tuple[float, float | None]:
        """(offset into the file, seconds to read): a crop drawn from (seed, epoch, index) for a long file."""
        e = self.entries[index]
        offset, span = float(e.get("offset", 0.0)), float(e["duration"])
        if self.max_seconds is None or span <= self.max_seconds:
            return offset, e.get("_span")
        rng = np.random.default_rng([self.seed, epoch, index])
        return offset + float(rng.uniform(0.0, span - self.max_seconds)), self.max_seconds

    def __getitem__(self, item: tuple[int, int] | int) -> dict:
        index, epoch = item if isinstance(item, tuple) else (item, 0)
        e = self.entries[index]
        offset, duration = self.window(index, epoch)
        audio = self.reader.read(e["audio_filepath"], offset, duration)
        if len(audio) < self.min_samples:  # a header that lied about the length
            raise AudioError(
                f"{e['audio_filepath']} ({e['_source']}): read {len(audio)} samples, fewer than the "
                f"{self.min_samples} its header promised for one masking block"
            )
        return {"id": e["id"], "audio": torch.from_numpy(audio), "length": len(audio)}


def collate_audio(items: list[dict]) -> dict:
    """-> ``{"ids": list[str], "audio": [B, S] zero-padded, "audio_lengths": [B]}``."""
    lengths = torch.tensor([it["length"] for it in items])
    audio = torch.zeros(len(items), int(lengths.max()))
    for i, it in enumerate(items):
        audio[i, : it["length"]] = it["audio"]
    return {"ids": [it["id"] for it in items], "audio": audio, "audio_lengths": lengths}


class NoiseSet:
    """Noise clips listed in a NeMo manifest, read lazily: ``noise(num_samples, generator) -> [<= num_samples]``.

    A clip is drawn uniformly with ``generator``, and from a longer clip a random window of
    ``num_samples`` is read (NeMo's loader does the same); a shorter clip comes back whole (the
    augmentation repeats it). Use ``NoiseSet.load(path, required=False)`` to get ``None`` instead of an
    error when the manifest is missing or empty.
    """

    def __init__(self, manifest: str | Path, sample_rate: int = 16000):
        path = Path(manifest)
        if not path.is_file():
            raise ValueError(f"noise manifest {path} does not exist")
        try:
            entries = read_entries(path)
        except ManifestError as err:
            raise ValueError(f"noise manifest {path} is unusable: {err}") from None
        self.manifest = path
        self.reader = AudioReader(sample_rate)
        self.sample_rate = sample_rate
        self.entries = entries
        self.clips = [(e["audio_filepath"], float(e.get("offset", 0.0)), float(e["duration"])) for e in entries]

    @classmethod
    def load(cls, manifest: str | Path | None, sample_rate: int = 16000, *, required: bool = True) -> NoiseSet | None:
        """A ``NoiseSet``; with ``required=False`` a missing (or ``None``) or empty manifest gives ``None``."""
        if manifest is None:
            if required:
                raise ValueError("no noise manifest given, but the augmentation requires one")
            return None
        try:
            return cls(manifest, sample_rate)
        except ValueError:
            path = Path(manifest)
            if required or (path.is_file() and path.stat().st_size and _has_lines(path)):
                raise  # a manifest with broken lines is an error even when noise is optional
            log.warning("noise manifest %s is missing or empty: no noise clips for the augmentation", path)
            return None

    def __len__(self) -> int:
        return len(self.clips)

    def __call__(self, num_samples: int, generator: torch.Generator | None = None) -> torch.Tensor:
        path, offset, duration = self.clips[int(torch.randint(0, len(self.clips), (), generator=generator))]
        available = int(math.floor(duration * self.sample_rate))
        if available > num_samples:
            start = int(torch.randint(0, available - num_samples + 1, (), generator=generator))
            return torch.from_numpy(
                self.reader.read(path, offset + start / self.sample_rate, num_samples / self.sample_rate)
            )
        return torch.from_numpy(self.reader.read(path, offset, duration))


def _has_lines(path: Path) -> bool:
    import gzip

    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        return any(line.strip() for line in f)


def noise_augmentation(noise: NoiseSet | None, **kw) -> MultiSpeakerNoiseAugmentation:
    """NEST's augmentation over ``noise``; without a noise set it mixes other utterances of the batch only
    (``noise_ratio=0``: what ``MultiSpeakerNoiseAugmentation`` supports; ``prob=0`` turns it off)."""
    if noise is None and kw.get("prob", 0.5) > 0:
        if kw.get("noise_ratio", 0.0) not in (0, 0.0):
            log.warning(
                "no noise set: noise_ratio %s -> 0 (the augmentation mixes other speakers only)", kw["noise_ratio"]
            )
        kw["noise_ratio"] = 0.0
    return MultiSpeakerNoiseAugmentation(noise=noise, **kw)
