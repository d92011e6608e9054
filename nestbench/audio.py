"""Reading audio the way every nestbench component expects it: mono float32 at the model's rate.

Wrong rates are resampled and multi-channel audio is downmixed rather than refused, because
real corpora mix both; each conversion is logged once per reader (not once per file) and
counted, so a user learns it happened without drowning in lines. What cannot be fixed (a
missing, corrupt, empty or non-finite file) raises ``AudioError`` naming the file.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

log = logging.getLogger(__name__)


class AudioError(ValueError):
    """An audio file that cannot be used; the message names the file and what to do."""


@dataclass
class AudioReader:
    sample_rate: int = 16000
    conversions: Counter = field(default_factory=Counter)

    def duration(self, path: str | Path) -> float:
        """Seconds, from the header only (cheap: used to sort before decoding)."""
        path = Path(path)
        if not path.is_file():
            raise AudioError(f"{path}: audio file not found")
        try:
            info = sf.info(str(path))
        except Exception as err:  # soundfile raises RuntimeError/LibsndfileError on undecodable headers
            raise AudioError(f"{path}: cannot read audio header ({err}); is it a wav/flac/ogg file?") from None
        return info.frames / info.samplerate

    def read(self, path: str | Path, offset: float = 0.0, duration: float | None = None) -> np.ndarray:
        """Mono float32 samples at ``sample_rate``; ``offset``/``duration`` in seconds select a segment."""
        path = Path(path)
        if not path.is_file():
            raise AudioError(f"{path}: audio file not found")
        try:
            with sf.SoundFile(str(path)) as f:
                sr, channels = f.samplerate, f.channels
                start = int(round(offset * sr))
                if start:
                    f.seek(start)
                frames = -1 if duration is None else int(round(duration * sr))
                data = f.read(frames, dtype="float32", always_2d=True)
        except Exception as err:
            raise AudioError(f"{path}: cannot decode audio ({err}); the file may be corrupt or truncated") from None
        if data.shape[0] == 0:
            raise AudioError(f"{path}: audio is empty (0 samples{' in the selected segment' if start else ''})")
        if not np.isfinite(data).all():
            raise AudioError(f"{path}: audio contains NaN or infinite samples")
        if channels > 1:
            data = data.mean(axis=1, keepdims=True)
            self._note("downmix", f"downmixing multi-channel audio to mono (first seen: {path}, {channels} ch)")
        samples = data[:, 0]
        if sr != self.sample_rate:
            samples = resample(samples, sr, self.sample_rate)
            self._note("resample", f"resampling audio to {self.sample_rate} Hz (first seen: {path} at {sr} Hz)")
        return np.ascontiguousarray(samples, dtype=np.float32)

    def _note(self, kind: str, message: str) -> None:
        if not self.conversions[kind]:
            log.warning(message)
        self.conversions[kind] += 1


def resample(samples: np.ndarray, orig_sr: int, new_sr: int) -> np.ndarray:
    import torchaudio.functional as AF  # lazy: torchaudio import is slow

    out = AF.resample(torch.from_numpy(np.ascontiguousarray(samples)), orig_sr, new_sr)
    return out.numpy().astype(np.float32, copy=False)
