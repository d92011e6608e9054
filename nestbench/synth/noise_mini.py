"""Noise clips synthesised offline, for NEST's denoising augmentation when no noise corpus (MUSAN, DNS) is at hand.

Why these kinds: the augmentation teaches the encoder to predict the clean speech's tokens under what
real recordings carry. Each clip is one of: coloured noise (white, pink, brown: the spectral slopes of
fans, rain and rumble), band-limited noise (a random centre and width: machinery, traffic), mains hum (50
or 60 Hz with decaying harmonics over a noise floor) and "babble-like" noise (noise shaped by a
speech-band filter and modulated at syllable rate, 3-6 Hz, as a crowd's envelope is). No speech is in
any clip, so no voice can leak into a downstream test set through the noise.

Layout: ``audio/<id>.wav`` (16-bit PCM) and ``noise.jsonl`` (NeMo manifest: ``audio_filepath`` relative
to the folder, ``duration``, ``id``, ``kind``). Idempotent per config, like the other synthetic corpora.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from ..fileio import write_text_atomic
from .markers import IN_PROGRESS, MARKER, claim, finished_hash

KINDS = ("white", "pink", "brown", "band", "hum", "babble")
_FORMAT_VERSION = 1


@dataclass(frozen=True)
class NoiseMiniConfig:
    """``n_clips`` clips of ``seconds`` (uniform range), kinds in turn, at ``level_db`` (RMS dBFS, uniform)."""

    n_clips: int = 48
    seconds: tuple[float, float] = (4.0, 10.0)
    level_db: tuple[float, float] = (-35.0, -20.0)
    seed: int = 0
    sample_rate: int = 16000

    def __post_init__(self) -> None:
        if self.n_clips < 1:
            raise ValueError(f"n_clips must be >= 1, got {self.n_clips}")
        if not 0.1 <= self.seconds[0] <= self.seconds[1]:
            raise ValueError(f"seconds must be (lo, hi) with 0.1 <= lo <= hi, got {self.seconds}")


def _shaped(n: int, sr: int, rng: np.random.Generator, gain) -> np.ndarray:
    """White noise filtered by ``gain(freqs)`` (linear amplitude), in the frequency domain."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1.0 / sr)
    return np.fft.irfft(spectrum * gain(freqs), n)


def noise_clip(kind: str, n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """One clip of ``kind`` (see ``KINDS``), ``n`` samples, unit RMS."""
    f = lambda freqs: np.maximum(freqs, 20.0)  # noqa: E731 -- no infinite gain at DC
    if kind == "white":
        x = rng.standard_normal(n)
    elif kind == "pink":
        x = _shaped(n, sr, rng, lambda fr: 1.0 / np.sqrt(f(fr)))
    elif kind == "brown":
        x = _shaped(n, sr, rng, lambda fr: 1.0 / f(fr))
    elif kind == "band":
        centre, octaves = np.exp(rng.uniform(np.log(150.0), np.log(5000.0))), rng.uniform(0.3, 1.5)
        x = _shaped(n, sr, rng, lambda fr: np.exp(-0.5 * (np.log2(f(fr) / centre) / octaves) ** 2))
    elif kind == "hum":
        base, t = rng.choice([50.0, 60.0]), np.arange(n) / sr
        x = sum(np.sin(2 * np.pi * base * k * t + rng.uniform(0, 2 * np.pi)) / k**1.5 for k in range(1, 9))
        x = x / np.sqrt(np.mean(x**2)) + 0.05 * rng.standard_normal(n)
    elif kind == "babble":
        x = _shaped(n, sr, rng, lambda fr: np.exp(-0.5 * (np.log2(f(fr) / 500.0) / 1.2) ** 2))
        rate, t = rng.uniform(3.0, 6.0), np.arange(n) / sr
        x = x * (1.2 + np.sin(2 * np.pi * rate * t + rng.uniform(0, 2 * np.pi)))
    else:
        raise ValueError(f"unknown noise kind {kind!r}; expected one of {KINDS}")
    return (x / np.sqrt(np.mean(x**2))).astype(np.float32)


def config_hash(config: NoiseMiniConfig) -> str:
    payload = {"config": asdict(config), "kinds": KINDS, "format": _FORMAT_VERSION}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def make_noise_mini(out_dir: str | Path, config: NoiseMiniConfig = NoiseMiniConfig()) -> Path:
    """Write the clips under ``out_dir`` (once per config) and return the manifest's path."""
    root = Path(out_dir)
    manifest = root / "noise.jsonl"
    digest = config_hash(config)
    if finished_hash(root) == digest:
        return manifest
    claim(root, [manifest], [root / "audio"], "make_noise_mini")
    sr, lines = config.sample_rate, []
    for i in range(config.n_clips):
        rng = np.random.default_rng([config.seed, i])
        kind = KINDS[i % len(KINDS)]
        n = int(rng.uniform(*config.seconds) * sr)
        audio = noise_clip(kind, n, sr, rng) * np.float32(10.0 ** (rng.uniform(*config.level_db) / 20.0))
        relative = Path("audio", f"noise-{i:04d}.wav")
        buffer = io.BytesIO()
        sf.write(buffer, np.clip(audio, -1.0, 1.0), sr, format="WAV", subtype="PCM_16")
        (root / relative).write_bytes(buffer.getvalue())
        lines.append({"audio_filepath": relative.as_posix(), "duration": round(n / sr, 4), "id": f"noise-{i:04d}",
                      "kind": kind})  # fmt: skip
    write_text_atomic(manifest, "".join(json.dumps(x) + "\n" for x in lines))
    write_text_atomic(root / MARKER, json.dumps({"config_hash": digest}) + "\n")
    (root / IN_PROGRESS).unlink()
    return manifest
