"""Diarization error rate (DER), equal to NIST md-eval-22 as run by dscore (the DIHARD scorer).

Published DERs differ by convention as much as by system, so every choice that moves the number
follows md-eval and is recorded with the result (``../shared/reference/metrics.md``, section DER):

- ``collar`` is the no-score zone on **each side** of every reference boundary (md-eval, dscore);
  pyannote's ``collar`` is the total width, so pyannote receives ``2 * collar``;
- each speaker's own overlapping turns are merged first (md-eval refuses them, dscore merges them;
  pyannote on raw turns would count the overlap twice);
- the speaker mapping is chosen as md-eval chooses it: one-to-one, maximising the total time each
  reference speaker shares with its hypothesis speaker, on the scored region *before* collars and
  overlap are taken out. Missed, false-alarm and confusion times are then counted with that mapping
  fixed, collars and overlap removed (pyannote alone would choose the mapping after removing them);
- the files are the reference's: a reference file with no hypothesis is all missed, a hypothesis
  file absent from the reference is ignored (with a warning);
- without a UEM each file is scored from its first to its last reference-or-hypothesis turn (dscore's
  ``gen_uem``); with one, turns are cut to its regions before anything else (dscore's ``trim_turns``);
- times are pooled over files (never a mean of per-file DERs) and reported as fractions.

md-eval only scores files that have reference speaker turns (after the UEM cut). A file without any is
reported per file, as dscore reports it (DER 1.0 if the hypothesis speaks there, else 0.0), and left
out of the overall times, as md-eval leaves it out. A ratio over zero reference time follows the same
dscore rule: 0.0 without errors, 1.0 with.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from ..fileio import atomic_write

log = logging.getLogger(__name__)

SPEAKER_MAPPING = (
    "md-eval: one-to-one mapping maximising total reference/hypothesis co-speaking time (Hungarian), "
    "chosen on the UEM-scored timeline before collars and overlap are removed, then held fixed"
)
COMPONENTS = ("missed", "false_alarm", "confusion")
_SHOWN = 10

Regions = list[tuple[float, float]]


class DiarizationDataError(ValueError):
    """An RTTM, UEM or set of them that cannot be scored; the message says where and why."""


class Turn(NamedTuple):
    """One speaker turn, in seconds; a plain ``(start, duration, speaker)`` tuple is accepted wherever turns are."""

    start: float
    duration: float
    speaker: str

    @property
    def end(self) -> float:
        return self.start + self.duration


@dataclass(frozen=True)
class DiarizationScore:
    """Pooled DER and its components as fractions of ``total`` (seconds of scored reference speech).

    ``per_file`` has the same five keys per reference file; ``no_reference_speech`` lists the files
    reported per file but left out of the pooled times (md-eval does not score them).
    """

    der: float
    missed: float
    false_alarm: float
    confusion: float
    total: float
    per_file: dict[str, dict[str, float]]
    convention: dict[str, Any]
    no_reference_speech: tuple[str, ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["no_reference_speech"] = list(self.no_reference_speech)
        return out


# --- reading and writing --------------------------------------------------------------------------


def _records(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of each line that is not blank and not a ``#`` or ``;`` comment (md-eval)."""
    with open(path, encoding="utf-8") as f:
        for number, text in enumerate(f, 1):
            fields = text.split()
            if fields and not fields[0].startswith(("#", ";")):
                yield number, fields


def _seconds(path: Path, number: int, name: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise DiarizationDataError(f"{path}:{number}: {name} {text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise DiarizationDataError(f"{path}:{number}: {name} {text!r} must be a finite number >= 0")
    return value


def read_rttm(path: str | os.PathLike[str]) -> dict[str, list[Turn]]:
    """uri -> speaker turns, from the ``SPEAKER`` lines of an RTTM file (other record types skipped).

    A zero-duration turn is dropped, but its uri is kept: the file is declared, with no speech.
    """
    path = Path(path)
    turns: dict[str, list[Turn]] = {}
    for number, fields in _records(path):
        if fields[0].upper() != "SPEAKER":
            continue
        if len(fields) < 8:
            raise DiarizationDataError(
                f"{path}:{number}: a SPEAKER line needs at least 8 fields "
                f"('SPEAKER uri channel onset duration <NA> <NA> speaker ...'), got {len(fields)}"
            )
        start = _seconds(path, number, "onset", fields[3])
        duration = _seconds(path, number, "duration", fields[4])
        file_turns = turns.setdefault(fields[1], [])
        if duration > 0:
            file_turns.append(Turn(start, duration, fields[7]))
    return turns


def read_uem(path: str | os.PathLike[str]) -> dict[str, Regions]:
    """uri -> scoring regions from ``uri channel start end`` lines; the channel is ignored, as md-eval
    does. Overlapping regions of a file are merged, as dscore merges them; empty ones are dropped."""
    path = Path(path)
    regions: dict[str, Regions] = {}
    for number, fields in _records(path):
        if len(fields) < 4:
            raise DiarizationDataError(f"{path}:{number}: a UEM line needs 4 fields (uri channel start end)")
        start = _seconds(path, number, "start", fields[2])
        end = _seconds(path, number, "end", fields[3])
        if end < start:
            raise DiarizationDataError(f"{path}:{number}: end {fields[3]} is before start {fields[2]}")
        regions.setdefault(fields[0], []).append((start, end))
    return {uri: _union(spans) for uri, spans in regions.items()}


def write_rttm(path: str | os.PathLike[str], turns_by_uri: Mapping[str, Sequence[Turn]]) -> Path:
    """Write standard 10-field RTTM (milliseconds), sorted by uri then onset; atomically."""
    path = Path(path)
    with atomic_write(path, "w") as f:
        for uri in sorted(turns_by_uri):
            for t in sorted(Turn(*t) for t in turns_by_uri[uri]):
                f.write(f"SPEAKER {uri} 1 {t.start:.3f} {t.duration:.3f} <NA> <NA> {t.speaker} <NA> <NA>\n")
    return path


# --- turns and regions ----------------------------------------------------------------------------


def _union(spans: Sequence[tuple[float, float]]) -> Regions:
    """Sorted, merged, non-empty spans."""
    merged: Regions = []
    for start, end in sorted(s for s in spans if s[1] > s[0]):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def merge_turns(turns: Sequence[Turn]) -> list[Turn]:
    """Each speaker's overlapping or touching turns merged into one, sorted by onset then speaker."""
    by_speaker: dict[str, list[tuple[float, float]]] = {}
    for t in turns:
        by_speaker.setdefault(t.speaker, []).append((t.start, t.end))
    merged = [Turn(s, e - s, spk) for spk, spans in by_speaker.items() for s, e in _union(spans)]
    return sorted(merged, key=lambda t: (t.start, t.speaker))


def _cut(turns: Sequence[Turn], regions: Regions) -> list[Turn]:
    """The parts of ``turns`` inside ``regions``."""
    out = []
    for t in turns:
        for start, end in regions:
            s, e = max(t.start, start), min(t.end, end)
            if e > s:
                out.append(Turn(s, e - s, t.speaker))
    return out


def _extent(*turn_lists: Sequence[Turn]) -> Regions:
    """dscore's region without a UEM: first onset to last offset over reference and hypothesis."""
    turns = [t for turns in turn_lists for t in turns]
    return [(min(t.start for t in turns), max(t.end for t in turns))] if turns else []


# --- scoring --------------------------------------------------------------------------------------


def _ratio(errors: float, total: float) -> float:
    """dscore's rule over zero reference time: 0.0 without errors, 1.0 with."""
    if total > 0:
        return errors / total
    return 1.0 if errors > 0 else 0.0


def _summary(times: Mapping[str, float]) -> dict[str, float]:
    total = times["total"]
    out = {"der": _ratio(sum(times[k] for k in COMPONENTS), total)}
    out.update({k: _ratio(times[k], total) for k in COMPONENTS})
    out["total"] = total
    return out


def _file_times(ref: list[Turn], hyp: list[Turn], regions: Regions, collar: float, skip_overlap: bool):
    """Missed, false-alarm, confusion and total seconds of one file (turns already cut and merged)."""
    from pyannote.core import Annotation, Segment, Timeline
    from pyannote.metrics.diarization import DiarizationErrorRate
    from pyannote.metrics.identification import IdentificationErrorRate

    # Labels of our own ("r0", "h0", ...): a hypothesis speaker may share a reference speaker's name.
    ref_ids = {s: f"r{i}" for i, s in enumerate(sorted({t.speaker for t in ref}))}
    hyp_ids = {s: f"h{i}" for i, s in enumerate(sorted({t.speaker for t in hyp}))}
    reference, hypothesis = Annotation(), Annotation()
    for i, t in enumerate(ref):
        reference[Segment(t.start, t.end), i] = ref_ids[t.speaker]
    for i, t in enumerate(hyp):
        hypothesis[Segment(t.start, t.end), i] = hyp_ids[t.speaker]
    # md-eval's mapping: on the uncollared timeline, overlap included (both already cut to the UEM)
    mapping = DiarizationErrorRate().optimal_mapping(reference, hypothesis)
    mapped = hypothesis.rename_labels(mapping=mapping)
    scorer = IdentificationErrorRate(collar=2 * collar, skip_overlap=skip_overlap)
    uem = Timeline([Segment(s, e) for s, e in regions])
    c = scorer.compute_components(reference, mapped, uem=uem)
    return {
        "missed": c["missed detection"],
        "false_alarm": c["false alarm"],
        "confusion": c["confusion"],
        "total": c["total"],
    }


def diarization_error(
    reference: Mapping[str, Sequence[Turn]],
    hypothesis: Mapping[str, Sequence[Turn]],
    *,
    collar: float = 0.0,
    skip_overlap: bool = False,
    uem: Mapping[str, Regions] | None = None,
    uem_name: str | None = None,
) -> DiarizationScore:
    """Pooled DER of ``hypothesis`` against ``reference`` (uri -> turns), as md-eval/dscore score it.

    ``collar`` is seconds on each side of every reference boundary. With ``uem`` every reference file
    needs scoring regions; ``uem_name`` (a path, say) is recorded in the convention.
    """
    if not (math.isfinite(collar) and collar >= 0):
        raise DiarizationDataError(f"collar must be a finite number of seconds >= 0, got {collar}")
    uris = sorted(reference)
    if unknown := sorted(set(hypothesis) - set(reference)):
        log.warning("hypothesis files not in the reference, ignored (as md-eval does): %s", _listed(unknown))
    if uem is not None:
        if missing := [u for u in uris if u not in uem]:
            raise DiarizationDataError(f"the UEM has no scoring region for reference files {_listed(missing)}")
        if extra := sorted(set(uem) - set(reference)):
            log.warning("UEM files not in the reference, ignored: %s", _listed(extra))

    per_file: dict[str, dict[str, float]] = {}
    pooled = dict.fromkeys((*COMPONENTS, "total"), 0.0)
    empty: list[str] = []
    for uri in uris:
        ref, hyp = [Turn(*t) for t in reference[uri]], [Turn(*t) for t in hypothesis.get(uri, ())]
        regions = _union(uem[uri]) if uem is not None else _extent(ref, hyp)
        ref, hyp = merge_turns(_cut(ref, regions)), merge_turns(_cut(hyp, regions))
        if ref:
            times = _file_times(ref, hyp, regions, collar, skip_overlap)
            for key in pooled:
                pooled[key] += times[key]
        else:  # md-eval does not score a file without reference turns; dscore still reports it
            times = {"missed": 0.0, "false_alarm": sum(t.duration for t in hyp), "confusion": 0.0, "total": 0.0}
            empty.append(uri)
        per_file[uri] = _summary(times)
    if empty:
        log.warning("no reference speech to score in %s: reported per file, left out of the overall", _listed(empty))
    convention = {
        "collar_per_side": collar,
        "overlap_scored": not skip_overlap,
        "uem": (uem_name or "given") if uem is not None else None,
        "speaker_mapping": SPEAKER_MAPPING,
        "scale": "fraction",
    }
    return DiarizationScore(
        **_summary(pooled), per_file=per_file, convention=convention, no_reference_speech=tuple(empty)
    )


def _listed(names: Sequence[str]) -> str:
    shown = ", ".join(names[:_SHOWN])
    return f"{shown} (and {len(names) - _SHOWN} more)" if len(names) > _SHOWN else shown


def score_diar_files(
    ref: str | os.PathLike[str],
    hyp: str | os.PathLike[str],
    *,
    collar: float,
    uem: str | os.PathLike[str] | None = None,
    skip_overlap: bool = False,
) -> dict[str, Any]:
    """Score two RTTM files (and a UEM file): the metrics, per-file breakdown and convention, for JSON.

    Messages name the ``nestbench score diar`` flags, as this is what the command calls.
    """
    if not (math.isfinite(collar) and collar >= 0):
        raise DiarizationDataError(f"--collar must be a finite number of seconds >= 0, got {collar}")
    reference = read_rttm(ref)
    if not reference:
        raise DiarizationDataError(f"--ref {ref}: no SPEAKER lines, nothing to score")
    regions = None
    if uem is not None:
        regions = read_uem(uem)
        if missing := sorted(set(reference) - set(regions)):
            raise DiarizationDataError(
                f"--uem {uem} has no scoring region for files of --ref {ref}: {_listed(missing)}"
            )
    score = diarization_error(
        reference,
        read_rttm(hyp),
        collar=collar,
        skip_overlap=skip_overlap,
        uem=regions,
        uem_name=None if uem is None else str(uem),
    )
    return score.as_dict()
