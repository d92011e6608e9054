"""Synthetic speaker identities and the rendering that gives espeak-ng's audio a speaker's identity.

Why: the speaker-verification and diarization corpora must draw speakers the same way, so that a speaker
space learnt on one means the same on the other; this module is the one place that defines a speaker.

A speaker's identity is fixed for all of its speech:

* an espeak voice variant (``VARIANTS``: the ones that sound like a person: no robots, whispers, echoes
  or clipping), espeak pitch (0-99) and speaking rate (words/min);
* a vocal-tract-length warp: the native audio is re-interpreted at ``warp`` times its rate and resampled,
  which scales formants *and* F0 by ``warp`` (as a longer or shorter vocal tract would, roughly); espeak's
  rate is divided by ``warp`` first (``espeak_voice``) so the speaker's speaking rate is kept;
* a spectral colouring: a tilt in dB/octave around 1 kHz plus one or two peaking bands (Gaussian on a
  log-frequency axis), applied as one zero-phase FFT filter together with any channel colouring.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from nestbench.synth.espeak import HUMAN_LIKE_VARIANTS, NATIVE_SAMPLE_RATE, Voice

VARIANTS: tuple[str, ...] = tuple(f"en+{v}" for v in HUMAN_LIKE_VARIANTS)
SILENCE_DB = -45.0  # frames this far below the loudest are espeak's leading/trailing silence


@dataclass(frozen=True)
class Band:
    """A peaking band: ``gain_db`` at ``freq_hz``, falling off as a Gaussian of width ``octaves``."""

    freq_hz: float
    gain_db: float
    octaves: float


@dataclass(frozen=True)
class Speaker:
    """One synthetic speaker's fixed identity."""

    speaker: str
    split: str
    variant: str
    pitch: int
    rate: int
    warp: float
    tilt_db_per_octave: float
    bands: tuple[Band, ...]


class IdentityRanges(Protocol):
    """The ranges identities are drawn from; a corpus config provides them as fields of these names."""

    pitch_range: tuple[int, int]
    rate_range: tuple[int, int]
    warp_range: tuple[float, float]
    tilt_db_per_octave: float
    eq_gain_db: tuple[float, float]


def warped_rate(warp: float) -> int:
    return int(round(NATIVE_SAMPLE_RATE * warp / 100.0)) * 100


def draw_speakers(
    counts: Iterable[tuple[str, int]], ranges: IdentityRanges, rng: np.random.Generator
) -> tuple[Speaker, ...]:
    """``count`` speakers per split, numbered ``spk000`` on in the order given; every variant is used once
    before any is used twice, in a seeded order, so up to ``len(VARIANTS)`` speakers share no variant."""
    counts = list(counts)
    n_total = sum(n for _, n in counts)
    variants = [VARIANTS[i] for _ in range(-(-n_total // len(VARIANTS))) for i in rng.permutation(len(VARIANTS))]
    speakers, index = [], 0
    for split, n in counts:
        for _ in range(n):
            bands = tuple(
                Band(freq_hz=round(float(np.exp(rng.uniform(np.log(300.0), np.log(5000.0)))), 1),
                     gain_db=round(float(rng.choice([-1.0, 1.0]) * rng.uniform(*ranges.eq_gain_db)), 2),
                     octaves=round(float(rng.uniform(0.3, 1.0)), 3))
                for _ in range(int(rng.integers(1, 3)))
            )  # fmt: skip
            speakers.append(Speaker(
                speaker=f"spk{index:03d}", split=split, variant=variants[index],
                pitch=int(rng.integers(ranges.pitch_range[0], ranges.pitch_range[1] + 1)),
                rate=int(rng.integers(ranges.rate_range[0], ranges.rate_range[1] + 1)),
                # quantised so the warped rate is a multiple of 100 Hz (a short, cacheable resampling kernel)
                warp=round(warped_rate(float(rng.uniform(*ranges.warp_range))) / NATIVE_SAMPLE_RATE, 6),
                tilt_db_per_octave=round(float(rng.uniform(-1, 1) * ranges.tilt_db_per_octave), 3),
                bands=bands,
            ))  # fmt: skip
            index += 1
    return tuple(speakers)


def espeak_voice(speaker: Speaker, rate: float, pitch: int) -> Voice:
    """The espeak voice that, once warped, speaks at ``rate`` words/min: the warp speeds speech up by
    ``warp``, so espeak is slowed down by as much."""
    return Voice(speaker.variant, rate=int(round(rate / speaker.warp)), pitch=pitch)


def random_band(rng: np.random.Generator, gain_db: float) -> Band:
    """A channel's peaking band: 300-5000 Hz (log-uniform), gain within ±``gain_db``, 0.5-1.5 octaves."""
    return Band(round(float(np.exp(rng.uniform(np.log(300.0), np.log(5000.0)))), 1),
                round(float(rng.uniform(-1, 1) * gain_db), 2),
                round(float(rng.uniform(0.5, 1.5)), 3))  # fmt: skip


# --------------------------------------------------------------------------------------------- audio


def gain_db(freqs: np.ndarray, tilt_db_per_octave: float, bands: tuple[Band, ...]) -> np.ndarray:
    """Tilt around 1 kHz (held flat beyond ±3 octaves) plus Gaussian peaking bands on log frequency."""
    log_f = np.log2(np.maximum(freqs, 1.0))
    gain = tilt_db_per_octave * np.clip(log_f - np.log2(1000.0), -3.0, 3.0)
    for band in bands:
        gain = gain + band.gain_db * np.exp(-0.5 * ((log_f - np.log2(band.freq_hz)) / band.octaves) ** 2)
    return gain


def colour(audio: np.ndarray, sample_rate: int, gain: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Zero-phase FFT filter with ``gain(freqs)`` dB; the padding absorbs the short impulse response's tails."""
    n = audio.shape[0]
    n_fft = 1 << int(math.ceil(math.log2(n + 2048)))
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    spectrum = np.fft.rfft(audio, n_fft) * (10.0 ** (gain(freqs) / 20.0))
    return np.fft.irfft(spectrum, n_fft)[:n].astype(np.float32)


def frame_energy(audio: np.ndarray, frame: int) -> np.ndarray:
    """Mean square per whole frame of ``frame`` samples."""
    n = audio.shape[0] // frame
    return np.square(audio[: n * frame].reshape(n, frame), dtype=np.float64).mean(axis=1)


def trim_silence(audio: np.ndarray, frame: int) -> np.ndarray:
    """From the first to the last frame within ``-SILENCE_DB`` of the loudest: the speech extent."""
    energy = frame_energy(audio, frame)
    loud = np.flatnonzero(energy > energy.max() * 10.0 ** (SILENCE_DB / 10.0))
    return audio[loud[0] * frame : (loud[-1] + 1) * frame]


def active_rms(audio: np.ndarray, frame: int) -> float:
    """RMS over frames within 30 dB of the loudest, so pauses do not dilute the level or the SNR."""
    energy = frame_energy(audio, frame)
    return float(np.sqrt(energy[energy > energy.max() * 1e-3].mean()))


class IdentityRenderer:
    """Turn espeak's native audio into a speaker's speech at ``sample_rate``: warp, trim, colour.

    Resampling kernels are cached per warp, as torchaudio's functional resampler would rebuild one per call.
    """

    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self.resamplers: dict[int, object] = {}

    def _resample(self, audio: np.ndarray, warp: float) -> np.ndarray:
        import torch
        import torchaudio

        rate = warped_rate(warp)
        if rate not in self.resamplers:
            self.resamplers[rate] = torchaudio.transforms.Resample(rate, self.sample_rate)
        with torch.no_grad():
            return self.resamplers[rate](torch.from_numpy(audio)).numpy()

    def __call__(
        self, native: np.ndarray, speaker: Speaker, channel_tilt_db_per_octave: float, channel_bands: tuple[Band, ...]
    ) -> np.ndarray:
        """float32 speech without leading or trailing silence, coloured by the speaker and the channel."""
        sr = self.sample_rate
        speech = trim_silence(self._resample(native, speaker.warp), sr // 100)
        return colour(speech, sr, lambda f: gain_db(f, speaker.tilt_db_per_octave, speaker.bands)
                      + gain_db(f, channel_tilt_db_per_octave, channel_bands))  # fmt: skip
