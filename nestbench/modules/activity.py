"""Per-frame speaker activity: frame labels from turns, windows stitched into sessions, turns back out.

A diarization model sees a session through windows and answers, per window, a probability of speech
for each of ``max_speakers`` output slots, slot order being the order in which speakers first speak
*in that window* (Sortformer's arrival-time order). Three steps turn that into RTTM:

1. ``stitch``: windows are placed on the session's frame grid one after another. Each window's slots
   are matched to the session speakers found so far by their agreement on the frames the window
   shares with what is already placed (Hungarian assignment). A slot with no match becomes a new
   session speaker. Arrival order makes the match easy: speakers already talking in the shared part
   come first. A speaker silent through the whole shared part who speaks again later in the window
   cannot be matched and becomes a new session speaker (scored as confusion); with windows much
   longer than a pause (90 s windows, 50 % overlap) that is rare, and it is the known limit of
   stitching without speaker embeddings.
2. ``binarize``: hysteresis thresholds (``onset`` to switch on, ``offset`` to switch off), an
   optional median filter, then turns shorter than ``min_duration_on`` dropped and gaps shorter than
   ``min_duration_off`` filled.
3. ``turns``: ``(start, duration, speaker)`` per active run, in seconds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def frame_activity(
    turns: Sequence[tuple[float, float, str]], offset: float, duration: float, frame_shift: float
) -> dict[str, np.ndarray]:
    """Each speaker's frames in ``[offset, offset + duration)``, in arrival order (who speaks first comes
    first): a frame is active when its centre lies in one of the speaker's turns."""
    n = max(1, int(math.ceil(duration / frame_shift - 1e-9)))
    centres = offset + (np.arange(n) + 0.5) * frame_shift
    active: dict[str, np.ndarray] = {}
    for start, dur, speaker in turns:
        if start + dur <= offset or start >= offset + duration:
            continue
        on = (centres >= start) & (centres < start + dur)
        if on.any():
            active[speaker] = active.get(speaker, np.zeros(n, bool)) | on
    return {s: active[s] for s in sorted(active, key=lambda s: (int(np.argmax(active[s])), s))}


def frame_labels(
    turns: Sequence[tuple[float, float, str]],
    offset: float,
    duration: float,
    frame_shift: float,
    max_speakers: int,
) -> tuple[np.ndarray, int]:
    """``[frames, max_speakers]`` 0/1 targets for the span ``[offset, offset + duration)``, columns in
    arrival order (``frame_activity``). Returns the targets and how many speakers of the span did not
    fit in ``max_speakers`` (they are left out)."""
    active = frame_activity(turns, offset, duration, frame_shift)
    n = max(1, int(math.ceil(duration / frame_shift - 1e-9)))
    labels = np.zeros((n, max_speakers), np.float32)
    for column, frames in enumerate(list(active.values())[:max_speakers]):
        labels[:, column] = frames
    return labels, max(0, len(active) - max_speakers)


def stitch(
    windows: Sequence[tuple],
    frame_shift: float,
    n_frames: int,
    min_shared: float = 0.5,
    min_similarity: float = 1.0,
) -> np.ndarray:
    """Session probabilities ``[n_frames, n_session_speakers]`` from ``(offset seconds, probs [T, S])``
    or ``(offset, probs, profiles [S, E])`` windows.

    A slot joins the session speaker it agrees with on the shared frames (``min_shared`` seconds of
    joint activity at least) or, when windows carry speaker profiles (the model's activity-weighted
    mean state per slot), the one whose running profile is closest (cosine >= ``min_similarity``):
    that second rule finds a speaker who is silent through the shared part. One Hungarian assignment
    per window, on agreement seconds plus cosine."""
    from scipy.optimize import linear_sum_assignment

    total = np.zeros((n_frames, 0), np.float64)
    weight = np.zeros(n_frames, np.float64)
    profiles: list[np.ndarray] = []  # per session speaker: activity-weighted sum of slot profiles
    for window in sorted(windows, key=lambda w: w[0]):
        offset, probs = window[0], window[1]
        mine_profiles = np.asarray(window[2], np.float64) if len(window) > 2 else None
        first = int(round(offset / frame_shift))
        probs = np.asarray(probs, np.float64)[: max(0, n_frames - first)]
        if probs.size == 0:
            continue
        span = slice(first, first + probs.shape[0])
        shared = weight[span] > 0
        placed = total[span][shared] / weight[span][shared, None] if total.shape[1] else np.zeros((shared.sum(), 0))
        columns = [-1] * probs.shape[1]
        active = probs.max(0) >= 0.5
        if total.shape[1]:
            agreement = np.minimum(probs[shared][:, :, None], placed[:, None, :]).sum(0) * frame_shift  # [S, G]
            similarity = np.zeros_like(agreement)
            if mine_profiles is not None:
                similarity = _cosine(mine_profiles, np.stack(profiles))
            rows, cols = linear_sum_assignment(-(agreement + similarity))
            for r, c in zip(rows, cols, strict=True):
                if agreement[r, c] >= min_shared or (active[r] and similarity[r, c] >= min_similarity):
                    columns[r] = int(c)
        for slot, column in enumerate(columns):
            if column < 0:
                if not active[slot]:
                    continue  # an unused slot: nobody new spoke
                total = np.concatenate([total, np.zeros((n_frames, 1))], 1)
                profiles.append(np.zeros(mine_profiles.shape[1]) if mine_profiles is not None else np.zeros(1))
                column = total.shape[1] - 1
            total[span, column] += probs[:, slot]
            if mine_profiles is not None:
                profiles[column] = profiles[column] + mine_profiles[slot] * probs[:, slot].sum()
        weight[span] += 1.0
    return total / np.maximum(weight, 1.0)[:, None]


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return a @ b.T


@dataclass(frozen=True)
class PostProcessing:
    """How probabilities become turns (all tunable on dev DER with ``nestbench sweep``)."""

    onset: float = 0.5
    offset: float = 0.5
    median_frames: int = 1
    min_duration_on: float = 0.0
    min_duration_off: float = 0.0


def binarize(probs: np.ndarray, frame_shift: float, post: PostProcessing) -> np.ndarray:
    """0/1 activity ``[frames, speakers]`` from probabilities, per ``post``."""
    probs = np.asarray(probs, np.float64)
    if post.median_frames > 1 and probs.shape[0]:
        from scipy.ndimage import median_filter

        probs = median_filter(probs, size=(post.median_frames, 1), mode="nearest")
    out = np.zeros(probs.shape, bool)
    for s in range(probs.shape[1]):
        on = False
        for t, p in enumerate(probs[:, s]):
            on = p >= post.offset if on else p >= post.onset
            out[t, s] = on
        out[:, s] = _fill_and_prune(out[:, s], frame_shift, post)
    return out


def _fill_and_prune(active: np.ndarray, frame_shift: float, post: PostProcessing) -> np.ndarray:
    active = active.copy()
    if post.min_duration_off > 0:
        for start, end in _runs(~active):
            if start > 0 and end < len(active) and (end - start) * frame_shift < post.min_duration_off:
                active[start:end] = True
    if post.min_duration_on > 0:
        for start, end in _runs(active):
            if (end - start) * frame_shift < post.min_duration_on:
                active[start:end] = False
    return active


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``[start, end)`` of each run of True."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist(), strict=True))


def turns(
    activity: np.ndarray, frame_shift: float, names: Sequence[str] | None = None
) -> list[tuple[float, float, str]]:
    """``(start, duration, speaker)`` for each active run, sorted by start; speakers ``spk0``, ``spk1``…"""
    out = []
    for s in range(activity.shape[1]):
        name = names[s] if names else f"spk{s}"
        out += [(a * frame_shift, (b - a) * frame_shift, name) for a, b in _runs(activity[:, s])]
    return sorted(out)
