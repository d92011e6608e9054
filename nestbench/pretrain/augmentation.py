"""NEST's denoising batch augmentation (NeMo ``MultiSpeakerNoiseAugmentation``), pure and seedable.

Why: NEST learns to predict the tokens of the *clean* utterance from an input where part of it is
overlaid with noise or with other speakers, so the encoder learns to ignore interference. Per
utterance, with probability ``prob``:

* ``mix_len = max(1, int(length * mix_rate))`` samples are overlaid (mix rate uniform in
  [min_mix_rate, max_mix_rate]; NEST: exactly half the utterance), split at random into between
  ``min_num_segments`` and ``max_num_segments`` pieces placed in order at random offsets;
* with probability ``noise_ratio`` (always, for a batch of one) the overlay is noise from the noise
  set at a speech-to-noise energy ratio uniform in [min_r_noise, max_r_noise] dB, otherwise it is
  taken from 1..``max_num_speakers`` other utterances of the batch at [min_r_speech, max_r_speech] dB;
* the ratio is of mean energies over the whole utterance: ``scale = sqrt(E_audio / (10^(r/10) E_overlay))``.

The clean audio is returned untouched (the quantizer targets come from it) and lengths do not change.
Unlike NeMo, an utterance that is not augmented stays clean (NeMo adds its data loader's raw noise
clip to it when a noise manifest is given), and a missing noise set is an error rather than silent
zero noise, unless ``noise_ratio`` is 0 (speech mixing only).

``noise`` is a sequence of 1-D waveforms (tensors or arrays at the model's sample rate; one is drawn
uniformly, and a random window of the utterance's length is cut from a longer one, as NeMo's loader
does) or a callable ``noise(num_samples, generator) -> 1-D tensor``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

_TARGET = "nemo.collections.asr.modules.ssl_modules.MultiSpeakerNoiseAugmentation"

NoiseSource = Sequence[Any] | Callable[[int, torch.Generator], torch.Tensor]


class MultiSpeakerNoiseAugmentation:
    """``augment(audio [B, S], lengths [B], generator) -> noisy audio [B, S]`` (a new tensor)."""

    def __init__(
        self,
        noise: NoiseSource | None = None,
        prob: float = 0.5,
        noise_ratio: float = 0.5,
        min_r_speech: float = -5.0,
        max_r_speech: float = 5.0,
        min_r_noise: float = -5.0,
        max_r_noise: float = 20.0,
        min_mix_rate: float = 0.5,
        max_mix_rate: float = 0.5,
        min_num_segments: int = 1,
        max_num_segments: int = 1,
        min_num_speakers: int = 1,
        max_num_speakers: int = 1,
    ):
        if not 0 <= prob <= 1:
            raise ValueError(f"prob must be in [0, 1], got {prob}")
        if not 0 <= noise_ratio <= 1:
            raise ValueError(f"noise_ratio must be in [0, 1], got {noise_ratio}")
        if min_r_speech > max_r_speech or min_r_noise > max_r_noise:
            raise ValueError("min_r_speech/min_r_noise must not exceed max_r_speech/max_r_noise")
        if not 0 <= min_mix_rate <= max_mix_rate <= 1:
            raise ValueError(f"need 0 <= min_mix_rate <= max_mix_rate <= 1, got {min_mix_rate}, {max_mix_rate}")
        if not 1 <= min_num_segments <= max_num_segments or not 1 <= min_num_speakers <= max_num_speakers:
            raise ValueError("need 1 <= min_num_segments <= max_num_segments and 1 <= min_num_speakers <= max")
        if noise is not None and not callable(noise):
            noise = [torch.as_tensor(np.asarray(n), dtype=torch.float32).flatten() for n in noise]
            empty = [i for i, n in enumerate(noise) if n.numel() == 0]
            if empty:
                raise ValueError(f"noise clips {empty[:8]} are empty")
        if prob > 0 and noise_ratio > 0 and (noise is None or (not callable(noise) and len(noise) == 0)):
            raise ValueError(
                f"noise_ratio={noise_ratio} mixes noise into {noise_ratio:.0%} of augmented utterances but the noise "
                "set is " + ("missing" if noise is None else "empty") + "; give noise clips, or noise_ratio=0 to mix "
                "other speakers only, or prob=0 to turn augmentation off"
            )
        self.noise = noise
        self.prob = prob
        self.noise_ratio = noise_ratio
        self.min_r_speech, self.max_r_speech = min_r_speech, max_r_speech
        self.min_r_noise, self.max_r_noise = min_r_noise, max_r_noise
        self.min_mix_rate, self.max_mix_rate = min_mix_rate, max_mix_rate
        self.min_num_segments, self.max_num_segments = min_num_segments, max_num_segments
        self.min_num_speakers, self.max_num_speakers = min_num_speakers, max_num_speakers

    # -- random draws, all from the caller's generator -----------------------------------------------
    @staticmethod
    def _rand(gen: torch.Generator | None) -> float:
        return float(torch.rand((), generator=gen))

    def _uniform(self, low: float, high: float, gen: torch.Generator | None) -> float:
        return low + (high - low) * self._rand(gen)

    @staticmethod
    def _randint(low: int, high: int, gen: torch.Generator | None) -> int:
        """Uniform integer in [low, high], both included (Python's ``random.randint``)."""
        return int(torch.randint(low, high + 1, (), generator=gen))

    # -- overlay material ----------------------------------------------------------------------------
    def _draw_noise(self, num_samples: int, gen: torch.Generator | None) -> torch.Tensor:
        if callable(self.noise):
            clip = torch.as_tensor(self.noise(num_samples, gen), dtype=torch.float32).flatten()
            if clip.numel() == 0:
                raise ValueError("the noise callable returned an empty clip")
            return clip
        clip = self.noise[self._randint(0, len(self.noise) - 1, gen)]
        if clip.numel() > num_samples:
            start = self._randint(0, clip.numel() - num_samples, gen)
            clip = clip[start : start + num_samples]
        return clip

    @staticmethod
    def _repeat_to(x: torch.Tensor, n: int) -> torch.Tensor:
        return x.repeat(n // x.numel() + 1)[:n] if x.numel() < n else x[:n]

    def _segments(
        self, i: int, audio: torch.Tensor, lengths: list[int], seg_lens: list[int], n_speakers: int, mode: str, gen
    ) -> list[torch.Tensor]:
        if mode == "noise":
            noise = self._repeat_to(self._draw_noise(lengths[i], gen).to(audio), audio.shape[1])
            offsets = np.cumsum([0, *seg_lens])
            return [noise[a:b] for a, b in zip(offsets[:-1], offsets[1:], strict=True)]
        others = [j for j in range(audio.shape[0]) if j != i]
        order = torch.randperm(len(others), generator=gen).tolist()
        speakers = [others[k] for k in order[: min(n_speakers, len(others))]]
        out, sid = [], 0
        for seg_len in seg_lens:
            j = speakers[sid]
            if seg_len > lengths[j]:
                out.append(self._repeat_to(audio[j, : lengths[j]], seg_len))
            else:
                start = self._randint(0, lengths[j] - seg_len - 1, gen) if lengths[j] > seg_len else 0
                out.append(audio[j, start : start + seg_len])
            sid += 1
            if sid >= len(speakers):
                sid = self._randint(0, len(speakers) - 1, gen)
        return out

    # -- the augmentation ----------------------------------------------------------------------------
    def __call__(
        self, audio: torch.Tensor, lengths: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        batch = audio.shape[0]
        lens = [int(n) for n in lengths.tolist()]
        noisy = audio.clone()
        for i in range(batch):
            if self._rand(generator) >= self.prob:
                continue
            length = lens[i]
            if length < 1:
                continue
            mix_rate = (
                self._uniform(self.min_mix_rate, self.max_mix_rate, generator)
                if self.min_mix_rate < self.max_mix_rate
                else self.min_mix_rate
            )
            mix_len = max(1, int(length * mix_rate))
            n_segments = self._randint(self.min_num_segments, self.max_num_segments, generator)
            n_speakers = min(self._randint(self.min_num_speakers, self.max_num_speakers, generator), batch)
            # every overlaid sample falls in one of n_segments pieces at random; empty pieces vanish
            owner = torch.randint(0, n_segments, (mix_len,), generator=generator)
            seg_lens = [n for n in torch.bincount(owner, minlength=n_segments).tolist() if n > 0]
            if self._rand(generator) < self.noise_ratio or batch == 1:
                mode, ratio_db = "noise", self._uniform(self.min_r_noise, self.max_r_noise, generator)
                if self.noise is None or (not callable(self.noise) and len(self.noise) == 0):
                    continue  # speech-only configuration and nobody else to mix in
            else:
                mode, ratio_db = "speech", self._uniform(self.min_r_speech, self.max_r_speech, generator)
            pieces = self._segments(i, audio, lens, seg_lens, n_speakers, mode, generator)
            overlay = torch.zeros_like(audio[i])
            low, high = 0, length - mix_len
            for piece in pieces:
                start = self._randint(low, high - 1, generator) if low < high else low
                overlay[start : start + piece.numel()] = piece
                low = start + piece.numel()
                high += piece.numel()
            audio_energy = float(audio[i, :length].double().pow(2).mean())
            overlay_energy = float(overlay[:length].double().pow(2).mean())
            if overlay_energy > 0:
                noisy[i] = audio[i] + (audio_energy / (10 ** (ratio_db / 10) * overlay_energy)) ** 0.5 * overlay
        return noisy

    def nemo_config(self) -> dict:
        """The ``train_ds.batch_augmentor`` block (the noise set is NeMo's ``train_ds.noise_manifest``)."""
        return {
            "_target_": _TARGET,
            "prob": self.prob,
            "noise_ratio": self.noise_ratio,
            "min_r_speech": self.min_r_speech,
            "max_r_speech": self.max_r_speech,
            "min_r_noise": self.min_r_noise,
            "max_r_noise": self.max_r_noise,
            "min_mix_rate": self.min_mix_rate,
            "max_mix_rate": self.max_mix_rate,
            "min_num_segments": self.min_num_segments,
            "max_num_segments": self.max_num_segments,
            "min_num_speakers": self.min_num_speakers,
            "max_num_speakers": self.max_num_speakers,
        }
