"""Model-free reference scores that every result table prints beside the model.

Speaker verification: the *mean-log-mel cosine* baseline. Each utterance is embedded as the mean over
time of its log-mel spectrogram (its long-term spectrum) and a trial is scored by the cosine of the two
embeddings. It sees loudness, channel and average vowel colour but no speaker-specific dynamics, so a
learned embedding that does not beat it clearly has learned little beyond the long-term spectrum.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch

from ..audio import AudioReader


def mean_logmel_embeddings(
    entries: Iterable[tuple[str, str | Path]], sample_rate: int = 16000, n_mels: int = 80
) -> dict[str, np.ndarray]:
    """Utterance id -> mean over frames of the log-mel spectrogram, float32 of shape ``(n_mels,)``.

    ``entries`` are ``(id, audio path)`` pairs; audio is read mono at ``sample_rate`` by ``AudioReader``.
    Features are Kaldi fbank (25 ms frames with Kaldi's povey window, 10 ms hop, no dither, samples scaled to the
    16-bit range as Kaldi expects), as ``torchaudio.compliance.kaldi.fbank`` computes them.
    """
    from torchaudio.compliance import kaldi  # lazy: torchaudio's import is slow

    reader = AudioReader(sample_rate)
    embeddings: dict[str, np.ndarray] = {}
    for utt_id, path in entries:
        if utt_id in embeddings:
            raise ValueError(f"duplicate utterance id {utt_id!r} ({path})")
        waveform = torch.from_numpy(reader.read(path)).unsqueeze(0) * 32768.0
        with torch.inference_mode():
            fbank = kaldi.fbank(waveform, num_mel_bins=n_mels, sample_frequency=sample_rate, dither=0.0)
        embeddings[utt_id] = fbank.mean(dim=0).numpy().astype(np.float32)
    return embeddings


def cosine_scores(embeddings: dict[str, np.ndarray], trials: Iterable[tuple[str, str]]) -> np.ndarray:
    """Cosine similarity for each ``(enroll id, test id)`` trial, as a float64 array in trial order.

    Every embedding is first mean-normalised with the mean over *all* of ``embeddings`` (not only the ids
    the trials use), which removes what all utterances share (for log-mels: the average spectrum) before
    the angle is measured. An embedding equal to that mean has no direction and scores 0 against anything.
    """
    if not embeddings:
        raise ValueError("cosine_scores needs at least one embedding")
    ids = list(embeddings)
    matrix = np.stack([np.asarray(embeddings[i], dtype=np.float64) for i in ids])
    matrix -= matrix.mean(axis=0)
    matrix /= np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
    row = {utt_id: k for k, utt_id in enumerate(ids)}
    scores = []
    for enroll, test in trials:
        missing = [i for i in (enroll, test) if i not in row]
        if missing:
            raise ValueError(f"trial ({enroll}, {test}) names ids without an embedding: {missing}")
        scores.append(float(matrix[row[enroll]] @ matrix[row[test]]))
    return np.asarray(scores, dtype=np.float64)
