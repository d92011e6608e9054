"""Speaker verification: trial lists, score files, EER, minDCF and DET curves.

Published EERs differ by convention as much as by model, so every choice that moves a number is fixed
here and recorded with the result (``CONVENTION``), as ``../shared/reference/metrics.md`` asks:

- a trial is accepted when its score >= the threshold. The sweep has one operating point per
  *distinct* score plus "reject all", so tied scores are one operating point and are never split trial by
  trial in file order (Kaldi's ``compute_min_dcf.py`` splits them);
- EER is the interpolated crossing of P_miss and P_fa (``EER_METHOD``). It is computed from every
  operating point, never read off a decimated ROC;
- minDCF has C_miss = C_fa = 1 and is normalised by min(P_tgt, 1 − P_tgt), as in Kaldi and s3prl
  (SpeechBrain's ``minDCF`` returns the unnormalised cost);
- rates are fractions.

Scores are matched to trials by their (enroll, test) ids, never by line order. A trial without a score
is an error, not a silent drop.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np

from ..fileio import atomic_write

EER_METHOD = (
    "interpolated crossing: P_miss and P_fa interpolated linearly along the DET segment between the two "
    "consecutive operating points (one per distinct score, accept if score >= threshold, plus reject-all) "
    "where P_fa - P_miss changes sign; the value where they meet (exact when an operating point has P_fa == P_miss)"
)
MIN_DCF_NORMALISATION = (
    "min over operating points of P_miss*P_tgt + P_fa*(1-P_tgt) (C_miss = C_fa = 1), divided by min(P_tgt, 1-P_tgt)"
)
CONVENTION: dict[str, str] = {
    "eer_method": EER_METHOD,
    "min_dcf": MIN_DCF_NORMALISATION,
    "accept": "score >= threshold",
    "ties": "one operating point",
    "scale": "fraction",
}
DEFAULT_P_TARGETS = (0.01, 0.05)
_SHOWN_MISSING = 10
_DET_TICKS = (0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4)
_DET_LIMITS = (0.0005, 0.5)
_DET_CLIP = 1e-4


class VerificationDataError(ValueError):
    """A trial list, score file or score array that cannot be scored; the message says where and why."""


@dataclass(frozen=True)
class Trial:
    """One line of a trial list: ``label`` is 1 for a target (same speaker) trial, 0 otherwise."""

    label: int
    enroll: str
    test: str
    line: int

    @property
    def key(self) -> tuple[str, str]:
        return (self.enroll, self.test)


# --- reading --------------------------------------------------------------------------------------


def _fields(path: Path) -> Iterator[tuple[int, list[str], str]]:
    """Yield (line number, whitespace-split fields, raw text) for each non-blank line."""
    with open(path, encoding="utf-8") as f:
        for number, text in enumerate(f, 1):
            fields = text.split()
            if fields:
                yield number, fields, text.strip()


def _shown(text: str) -> str:
    return repr(text if len(text) <= 80 else text[:77] + "...")


def _voxceleb(fields: list[str]) -> tuple[int, str, str] | None:
    if len(fields) == 3 and fields[0] in ("0", "1"):
        return int(fields[0]), fields[1], fields[2]
    return None


def _kaldi(fields: list[str]) -> tuple[int, str, str] | None:
    if len(fields) == 3 and fields[2] in ("target", "nontarget"):
        return int(fields[2] == "target"), fields[0], fields[1]
    return None


_TRIAL_FORMATS: dict[str, Callable[[list[str]], tuple[int, str, str] | None]] = {
    "VoxCeleb '1|0 <enroll> <test>'": _voxceleb,
    "Kaldi '<enroll> <test> target|nontarget'": _kaldi,
}


def read_trials(path: str | os.PathLike[str]) -> list[Trial]:
    """Read a VoxCeleb or Kaldi trial list; the first trial line decides the format for the whole file.

    Refused: malformed or mixed-format lines, the same (enroll, test) pair twice (its two labels could
    disagree, and it would count twice), and lists without both classes (EER and minDCF are undefined).
    """
    path = Path(path)
    trials: list[Trial] = []
    first_line: dict[tuple[str, str], int] = {}
    fmt: str | None = None
    fmt_line = 0
    for number, fields, text in _fields(path):
        if fmt is None:
            fmt = next((name for name, parse in _TRIAL_FORMATS.items() if parse(fields)), None)
            if fmt is None:
                expected = " or ".join(_TRIAL_FORMATS)
                raise VerificationDataError(f"{path}:{number}: expected a trial, {expected}; got {_shown(text)}")
            fmt_line = number
        parsed = _TRIAL_FORMATS[fmt](fields)
        if parsed is None:
            raise VerificationDataError(
                f"{path}:{number}: expected {fmt}, the format of line {fmt_line}; got {_shown(text)}"
            )
        label, enroll, test = parsed
        if (enroll, test) in first_line:
            raise VerificationDataError(
                f"{path}:{number}: duplicate trial {enroll} {test}, already on line {first_line[enroll, test]}"
            )
        first_line[enroll, test] = number
        trials.append(Trial(label, enroll, test, number))
    if not trials:
        raise VerificationDataError(f"{path}: no trials in this file")
    n_target = sum(t.label for t in trials)
    if n_target in (0, len(trials)):
        missing = "target" if n_target == 0 else "non-target"
        raise VerificationDataError(
            f"{path}: {len(trials)} trials but no {missing} trials; EER and minDCF need both classes"
        )
    return trials


def read_scores(path: str | os.PathLike[str]) -> dict[tuple[str, str], float]:
    """Read ``<enroll> <test> <score>`` lines, in any order, keyed by the (enroll, test) pair.

    Non-finite scores ("nan", "inf") are read as such; ``pair_scores`` refuses them with the trial named.
    """
    path = Path(path)
    scores: dict[tuple[str, str], float] = {}
    first_line: dict[tuple[str, str], int] = {}
    for number, fields, text in _fields(path):
        if len(fields) != 3:
            raise VerificationDataError(
                f"{path}:{number}: expected '<enroll> <test> <score>' (3 fields), got {len(fields)}: {_shown(text)}"
            )
        enroll, test, value = fields
        try:
            score = float(value)
        except ValueError:
            raise VerificationDataError(f"{path}:{number}: score {value!r} is not a number") from None
        if (enroll, test) in first_line:
            raise VerificationDataError(
                f"{path}:{number}: second score for {enroll} {test}, already scored on line {first_line[enroll, test]}"
            )
        first_line[enroll, test] = number
        scores[enroll, test] = score
    return scores


def pair_scores(
    trials: Sequence[Trial], scores: Mapping[tuple[str, str], float], *, source: str = "scores"
) -> tuple[np.ndarray, np.ndarray]:
    """Scores (float64) and labels (bool) in trial order, matched by ids; scores for other pairs are ignored.

    A trial with no score is an error: dropping it would score a different trial list.
    """
    if not trials:
        raise VerificationDataError(f"{source}: no trials to score")
    values = np.empty(len(trials), dtype=np.float64)
    labels = np.fromiter((t.label == 1 for t in trials), dtype=bool, count=len(trials))
    missing: list[Trial] = []
    for i, trial in enumerate(trials):
        score = scores.get(trial.key)
        if score is None:
            missing.append(trial)
        else:
            values[i] = score
    if missing:
        shown = ", ".join(f"{t.enroll} {t.test} (trial line {t.line})" for t in missing[:_SHOWN_MISSING])
        more = f", and {len(missing) - _SHOWN_MISSING} more" if len(missing) > _SHOWN_MISSING else ""
        raise VerificationDataError(f"{source}: {len(missing)} of {len(trials)} trials have no score: {shown}{more}")
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        trial = trials[int(bad[0])]
        raise VerificationDataError(
            f"{source}: score {values[bad[0]]} for trial {trial.enroll} {trial.test} (trial line {trial.line}) "
            f"is not finite ({bad.size} non-finite in all)"
        )
    return values, labels


# --- metrics --------------------------------------------------------------------------------------


def _checked(scores: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    if scores.ndim != 1 or labels.shape != scores.shape:
        raise ValueError(f"scores and labels must be 1-D and of one length, got {scores.shape} and {labels.shape}")
    if scores.size == 0:
        raise ValueError("no trials to score")
    if labels.dtype != bool:
        if not np.isin(labels, (0, 1)).all():
            raise ValueError("labels must be booleans or 0/1 (1 = target trial)")
        labels = labels.astype(bool)
    bad = np.flatnonzero(~np.isfinite(scores))
    if bad.size:
        raise ValueError(f"{bad.size} non-finite score(s), the first at index {bad[0]}: {scores[bad[0]]}")
    n_target = int(labels.sum())
    if n_target in (0, labels.size):
        raise ValueError(
            f"all {labels.size} trials are {'non-' if n_target == 0 else ''}target trials: EER is undefined"
        )
    return scores, labels


def _operating_points(scores: Any, labels: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:
    """(p_fa, p_miss, thresholds, n_target, n_nontarget): one sort, then cumulative counts, O(n log n)."""
    scores, labels = _checked(scores, labels)
    order = np.argsort(scores, kind="stable")
    ordered = scores[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    below = np.r_[starts, ordered.size]  # trials rejected at each operating point
    targets_below = np.r_[0, np.cumsum(labels[order])][below]
    n_target = int(targets_below[-1])
    n_nontarget = ordered.size - n_target
    p_miss = targets_below / n_target
    p_fa = (n_nontarget - (below - targets_below)) / n_nontarget
    return p_fa, p_miss, np.r_[ordered[starts], np.inf], n_target, n_nontarget


def det_curve(scores: Any, labels: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(p_fa, p_miss, thresholds) at every operating point: each distinct score, then reject-all (+inf).

    The first point (threshold = lowest score) accepts everything: p_fa = 1, p_miss = 0; the last
    rejects everything: p_fa = 0, p_miss = 1. p_fa falls and p_miss rises strictly along the curve.
    """
    p_fa, p_miss, thresholds, _, _ = _operating_points(scores, labels)
    return p_fa, p_miss, thresholds


def _eer(p_fa: np.ndarray, p_miss: np.ndarray, thresholds: np.ndarray) -> tuple[float, float]:
    """EER and its threshold by ``EER_METHOD``; the gap p_fa - p_miss goes strictly from +1 to -1."""
    gap = p_fa - p_miss
    k = int(np.argmax(gap <= 0))  # first operating point at or past the crossing (k >= 1)
    if gap[k] == 0:
        return float(p_fa[k]), float(thresholds[k])
    w = gap[k - 1] / (gap[k - 1] - gap[k])  # how far along the segment from point k-1 to point k
    eer = p_fa[k - 1] + w * (p_fa[k] - p_fa[k - 1])
    # Between the top score and reject-all there is no finite threshold to interpolate to: keep the top score.
    upper = thresholds[k] if np.isfinite(thresholds[k]) else thresholds[k - 1]
    return float(eer), float(thresholds[k - 1] + w * (upper - thresholds[k - 1]))


def verification_metrics(scores: Any, labels: Any, p_targets: Sequence[float] = DEFAULT_P_TARGETS) -> dict[str, float]:
    """EER, normalised minDCF per P_tgt (key ``min_dcf_{p:g}``), the EER threshold and the class counts.

    Exact at any size (every distinct score is an operating point); see the module docstring and
    ``CONVENTION`` for what exactly is computed.
    """
    bad = [p for p in p_targets if not 0 < p < 1]
    if bad:
        raise ValueError(f"P_tgt must lie strictly between 0 and 1, got {bad}")
    p_fa, p_miss, thresholds, n_target, n_nontarget = _operating_points(scores, labels)
    eer, eer_threshold = _eer(p_fa, p_miss, thresholds)
    metrics: dict[str, float] = {"eer": eer}
    for p in p_targets:
        cost = p_miss * p + p_fa * (1 - p)
        metrics[f"min_dcf_{p:g}"] = float(cost.min() / min(p, 1 - p))
    metrics.update(eer_threshold=eer_threshold, n_target=n_target, n_nontarget=n_nontarget)
    return metrics


def score_sv_files(
    trials_path: str | os.PathLike[str],
    scores_path: str | os.PathLike[str],
    *,
    p_targets: Sequence[float] = DEFAULT_P_TARGETS,
) -> dict[str, Any]:
    """Score a score file against a trial list: the metrics, counts and the convention, ready for JSON."""
    trials = read_trials(trials_path)
    scores = read_scores(scores_path)
    values, labels = pair_scores(trials, scores, source=str(scores_path))
    in_list = {t.key for t in trials}
    return {
        **verification_metrics(values, labels, p_targets),
        "n_trials": len(trials),
        "unused_scores": sum(key not in in_list for key in scores),
        "convention": dict(CONVENTION),
    }


# --- DET plot -------------------------------------------------------------------------------------


def _probit(p: Any) -> np.ndarray:
    """Normal deviate of each probability (clipped to [1e-4, 1 - 1e-4]); one inv_cdf per distinct value."""
    p = np.clip(np.asarray(p, dtype=np.float64), _DET_CLIP, 1 - _DET_CLIP)
    values, inverse = np.unique(p, return_inverse=True)
    inv_cdf = NormalDist().inv_cdf
    return np.fromiter((inv_cdf(v) for v in values), dtype=np.float64, count=values.size)[inverse].reshape(p.shape)


def plot_det(
    path: str | os.PathLike[str],
    curves: Mapping[str, tuple[np.ndarray, np.ndarray]],
    eers: Mapping[str, float] | None = None,
    title: str = "",
) -> Path:
    """Write a DET plot (PNG) of ``{name: (p_fa, p_miss)}`` on normal-deviate axes, EER points marked.

    Normal-deviate axes make Gaussian score distributions straight lines, which is why DET plots use
    them. The PNG is written atomically, so a reader never sees half a file.
    """
    if not curves:
        raise ValueError("plot_det needs at least one curve")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 6))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    limits = _probit(_DET_LIMITS)
    ax.plot(limits, limits, color="0.7", linestyle=":", linewidth=1)  # P_fa = P_miss
    for name, (p_fa, p_miss) in curves.items():
        p_fa, p_miss = np.asarray(p_fa), np.asarray(p_miss)
        if p_fa.shape != p_miss.shape:
            raise ValueError(f"curve {name!r}: p_fa {p_fa.shape} and p_miss {p_miss.shape} differ in shape")
        eer = None if eers is None else eers.get(name)
        label = name if eer is None else f"{name} (EER {100 * eer:.2f}%)"
        (line,) = ax.plot(_probit(p_fa), _probit(p_miss), label=label, linewidth=1.5)
        if eer is not None:
            point = float(_probit(eer))
            ax.plot([point], [point], marker="o", color=line.get_color(), linestyle="none")
    ticks = _probit(_DET_TICKS)
    tick_labels = [f"{100 * p:g}" for p in _DET_TICKS]
    ax.set_xticks(ticks, tick_labels)
    ax.set_yticks(ticks, tick_labels)
    ax.set_xlim(*limits)
    ax.set_ylim(*limits)
    ax.set_aspect("equal")
    ax.grid(True, alpha=0.3)
    ax.set_xlabel("False acceptance rate (%)")
    ax.set_ylabel("Miss (false rejection) rate (%)")
    if title:
        ax.set_title(title)
    ax.legend(loc="upper right")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=120, bbox_inches="tight")
    return path
