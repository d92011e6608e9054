"""SLURP intent accuracy and SLU-F1, scored exactly as SLURP's official evaluator scores them.

Every published SLURP number comes from ``scripts/evaluation/`` in pswietojanski/slurp, so this
module reproduces each detail of it that moves a number, odd ones included (checked against the
evaluator's own output in ``tests/fixtures/slurp/``):

- gold has one item per recording *file* (each recording of a sentence is scored on its own);
- the intent compared is ``scenario + "_" + action``, never gold's ``intent`` field (which is just
  the action for a few sentences), and it is compared as that joined string;
- gold slot fillers are the annotated tokens' surfaces, lower-cased, joined by single spaces;
  predictions are taken as they are and every comparison is case-sensitive;
- span-F1 counts exact ``(type, filler)`` matches, each gold slot used once;
- the distance variants match each predicted slot, in prediction order, to the nearest still
  unmatched gold slot of its type (first one on ties), adding 1 to TP and the distance to FP and FN;
  a predicted type with no unmatched gold slot left adds 1 to FP; leftover gold slots add 1 to FN.
  The word distance is jiwer 2.0's WER (it can exceed 1), the char distance textdistance 4.1's
  normalised Levenshtein (1.0 for two empty strings);
- SLU-F1 is the F1 of the word and char variants' summed TP/FP/FN; micro-averaged throughout;
  with nothing to count (no TP, FP or FN) a score is 0.0, as in the evaluator.

Unlike the evaluator, which silently skips gold files without a prediction, coverage is reported
and partial coverage is refused unless the caller allows it; scoring nothing (no prediction for any
gold recording) is refused always, since its zeros would read as a result.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nestbench.jsonl import iter_jsonl

from ..fileio import write_text_atomic

log = logging.getLogger(__name__)

CONVENTION: dict[str, Any] = {
    "name": "slurp-official",
    "evaluator": "pswietojanski/slurp scripts/evaluation (commit 8eb1654)",
    "unit": "recording file",
    "intent": "scenario_action",
    "average": "micro",
    "scale": "fraction",
}
METRICS = (
    "intent_acc",
    "slu_f1",
    "scenario_acc",
    "action_acc",
    "slu_f1_word",
    "slu_f1_char",
    "span_f1",
    "coverage",
    "n_gold",
    "n_scored",
)
_GOLD_KEYS = ("scenario", "action", "tokens", "entities", "recordings")
_PREDICTION_KEYS = ("file", "scenario", "action", "entities")
_SLOT_KEYS = {"type", "filler"}
_SHOWN_MISSING = 5


class SlurpFormatError(ValueError):
    """A SLURP gold or prediction file that cannot be read; the message names file and line."""


@dataclass(frozen=True)
class SlotValue:
    type: str
    filler: str


@dataclass(frozen=True)
class SluPrediction:
    """The semantics of one recording: what a system predicts and what gold is reduced to."""

    file: str
    scenario: str
    action: str
    entities: tuple[SlotValue, ...] = ()

    @property
    def intent(self) -> str:
        """The string the evaluator compares (so ``"a_b" + "c"`` equals ``"a" + "b_c"``)."""
        return f"{self.scenario}_{self.action}"


@dataclass
class Counts:
    """Accumulated true positives, false positives and false negatives (floats: distances add up)."""

    tp: float = 0.0
    fp: float = 0.0
    fn: float = 0.0

    def __iadd__(self, other: Counts) -> Counts:
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn
        return self

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp or self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp or self.fn else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p or r else 0.0


# --- reading and writing -------------------------------------------------------------------------


def _read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, object) for each non-blank line; anything but a JSON object is an error."""
    if not path.is_file():
        raise SlurpFormatError(f"{path}: file not found")
    for lineno, _line, item in iter_jsonl(path, SlurpFormatError):
        yield lineno, item


def _require(item: dict[str, Any], keys: Sequence[str], where: str) -> None:
    missing = [key for key in keys if key not in item]
    if missing:
        raise SlurpFormatError(f"{where}: missing key(s) {missing}; present: {sorted(item)}")


def _string(value: Any, what: str, where: str) -> str:
    if not isinstance(value, str):
        raise SlurpFormatError(f"{where}: {what} must be a string, got {value!r}")
    return value


def gold_entities(sentence: dict[str, Any], where: str = "gold") -> tuple[SlotValue, ...]:
    """Slots of one SLURP annotation line, fillers built as the evaluator builds them.

    ``span`` holds positions in ``tokens``; the filler is those tokens' surfaces, lower-cased and
    joined by spaces (not the bracketed text of ``sentence_annotation``, which keeps the case).
    """
    tokens = sentence["tokens"]
    slots = []
    for n, entity in enumerate(sentence["entities"]):
        if not isinstance(entity, dict) or "type" not in entity or "span" not in entity:
            raise SlurpFormatError(f"{where}: entities[{n}] needs 'type' and 'span', got {entity!r}")
        span = entity["span"]
        if not span or not all(isinstance(i, int) and 0 <= i < len(tokens) for i in span):
            raise SlurpFormatError(f"{where}: entities[{n}] has span {span!r}, not token positions of {len(tokens)}")
        surfaces = [_string(tokens[i].get("surface"), f"tokens[{i}].surface", where) for i in span]
        slots.append(SlotValue(_string(entity["type"], f"entities[{n}].type", where), " ".join(surfaces).lower()))
    return tuple(slots)


def load_gold(path: str | os.PathLike[str]) -> dict[str, SluPrediction]:
    """Read a SLURP annotation file (one sentence per line) into one gold item per recording file."""
    path = Path(path)
    gold: dict[str, SluPrediction] = {}
    first_line: dict[str, int] = {}
    for lineno, sentence in _read_jsonl(path):
        where = f"{path}:{lineno}"
        _require(sentence, _GOLD_KEYS, where)
        entities = gold_entities(sentence, where)
        scenario = _string(sentence["scenario"], "scenario", where)
        action = _string(sentence["action"], "action", where)
        for n, recording in enumerate(sentence["recordings"]):
            if not isinstance(recording, dict) or not isinstance(recording.get("file"), str):
                raise SlurpFormatError(f"{where}: recordings[{n}] has no 'file' name: {recording!r}")
            file = recording["file"]
            if file in gold:
                raise SlurpFormatError(f"{where}: recording {file!r} also appears on line {first_line[file]}")
            first_line[file] = lineno
            gold[file] = SluPrediction(file, scenario, action, entities)
    if not gold:
        raise SlurpFormatError(f"{path}: no recordings in this annotation file")
    return gold


def _prediction_slots(value: Any, where: str) -> tuple[SlotValue, ...]:
    if not isinstance(value, list):
        raise SlurpFormatError(f"{where}: 'entities' must be a list, got {value!r}")
    slots = []
    for n, entity in enumerate(value):
        # The evaluator compares whole dicts for span-F1, so an extra key would silently never match.
        if not isinstance(entity, dict) or set(entity) != _SLOT_KEYS:
            raise SlurpFormatError(f"{where}: entities[{n}] must have exactly the keys 'type' and 'filler': {entity!r}")
        slots.append(
            SlotValue(
                _string(entity["type"], f"entities[{n}].type", where),
                _string(entity["filler"], f"entities[{n}].filler", where),
            )
        )
    return tuple(slots)


def load_predictions(path: str | os.PathLike[str]) -> dict[str, SluPrediction]:
    """Read a SLURP prediction file (``{"file", "scenario", "action", "entities"}`` per line), keyed by file."""
    path = Path(path)
    predictions: dict[str, SluPrediction] = {}
    first_line: dict[str, int] = {}
    for lineno, item in _read_jsonl(path):
        where = f"{path}:{lineno}"
        _require(item, _PREDICTION_KEYS, where)
        file = _string(item["file"], "file", where)
        if file in predictions:
            raise SlurpFormatError(f"{where}: a second prediction for {file!r} (first on line {first_line[file]})")
        first_line[file] = lineno
        predictions[file] = SluPrediction(
            file=file,
            scenario=_string(item["scenario"], "scenario", where),
            action=_string(item["action"], "action", where),
            entities=_prediction_slots(item["entities"], where),
        )
    return predictions


def write_predictions(path: str | os.PathLike[str], predictions: Iterable[SluPrediction]) -> None:
    """Write predictions in the evaluator's input format, atomically (a reader never sees half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for p in predictions:
        entities = [{"type": s.type, "filler": s.filler} for s in p.entities]
        record = {"file": p.file, "scenario": p.scenario, "action": p.action, "entities": entities}
        lines.append(json.dumps(record, ensure_ascii=False) + "\n")
    write_text_atomic(path, "".join(lines))


# --- distances -----------------------------------------------------------------------------------


def levenshtein(a: Sequence[Any], b: Sequence[Any]) -> int:
    """Unit-cost edit distance between two sequences (of characters or of words)."""
    start, end = 0, 0  # a shared prefix and suffix never need edits; trimming them keeps the table small
    while start < min(len(a), len(b)) and a[start] == b[start]:
        start += 1
    while end < min(len(a), len(b)) - start and a[-1 - end] == b[-1 - end]:
        end += 1
    a, b = a[start : len(a) - end], b[start : len(b) - end]
    if len(a) < len(b):
        a, b = b, a
    if not b:
        return len(a)
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, start=1):
        current = [i]
        for j, y in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


_WHITESPACE_RUN = re.compile(r"\s\s+")


def _words(text: str) -> list[str]:
    """jiwer 2.0's default split: runs of 2+ whitespace become one space, strip, split on ' ', drop blanks.

    So a single tab or no-break space does *not* separate words, while two of them do.
    """
    return [w for w in _WHITESPACE_RUN.sub(" ", text).strip().split(" ") if w.strip()]


def word_distance(gold: str, predicted: str) -> float:
    """WER of ``predicted`` against ``gold``: edits over gold words, so above 1 for long predictions."""
    truth = _words(gold)
    if not truth:
        raise ValueError(f"gold slot filler {gold!r} has no words; the word distance is undefined")
    return levenshtein(truth, _words(predicted)) / len(truth)


def char_distance(gold: str, predicted: str) -> float:
    """Levenshtein distance over the longer length, in [0, 1]; two empty strings count as 1."""
    longest = max(len(gold), len(predicted))
    return levenshtein(gold, predicted) / longest if longest else 1.0


# --- per-recording counts ------------------------------------------------------------------------


def exact_span_counts(gold: Sequence[SlotValue], predicted: Sequence[SlotValue]) -> Counts:
    """Exact (type, filler) matches; each gold slot can be matched once."""
    remaining = list(gold)
    counts = Counts()
    for slot in predicted:
        if slot in remaining:
            remaining.remove(slot)
            counts.tp += 1
        else:
            counts.fp += 1
    counts.fn += len(remaining)
    return counts


def distance_span_counts(
    gold: Sequence[SlotValue], predicted: Sequence[SlotValue], distance: Callable[[str, str], float]
) -> Counts:
    """Greedy matching in prediction order to the nearest unmatched gold slot of the same type."""
    remaining = list(gold)
    counts = Counts()
    for slot in predicted:
        best, best_distance = -1, math.inf
        for i, candidate in enumerate(remaining):
            if candidate.type == slot.type:
                d = distance(candidate.filler, slot.filler)
                if d < best_distance:  # strict: the first of equally near gold slots wins
                    best, best_distance = i, d
        if best < 0:
            counts.fp += 1
            continue
        del remaining[best]
        counts.tp += 1
        counts.fp += best_distance
        counts.fn += best_distance
    counts.fn += len(remaining)
    return counts


# --- corpus scores -------------------------------------------------------------------------------


def _fraction(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def _check_coverage(gold: dict[str, SluPrediction], scored: int, missing: list[str], allow_partial: bool) -> None:
    if not missing:
        return
    shown = ", ".join(missing[:_SHOWN_MISSING]) + (", ..." if len(missing) > _SHOWN_MISSING else "")
    message = (
        f"predictions cover {scored} of {len(gold)} gold recordings; {len(missing)} have no prediction (e.g. {shown})"
    )
    if not scored:
        raise ValueError(f"{message}: nothing to score. Are the predictions empty, or keyed by another file name?")
    if not allow_partial:
        raise ValueError(
            f"{message}. Score them all, or use --allow-partial (allow_partial=True from Python) "
            "to score the covered subset."
        )
    log.warning("%s; scoring the covered subset only", message)


def score_slurp(
    gold: dict[str, SluPrediction], predictions: dict[str, SluPrediction], *, allow_partial: bool = False
) -> dict[str, float]:
    """Score predictions keyed by recording file against gold keyed the same way.

    Returns fractions for the keys in ``METRICS`` (``n_gold``/``n_scored`` are counts). Accuracies
    are over the scored recordings; they equal the evaluator's micro F1 on single-label data.
    """
    if not gold:
        raise ValueError("gold is empty: nothing to score")
    missing = [file for file in gold if file not in predictions]
    scored = len(gold) - len(missing)
    _check_coverage(gold, scored, missing, allow_partial)
    extra = len(predictions.keys() - gold.keys())
    if extra:
        log.warning("%d prediction(s) name recordings that are not in gold; they are ignored", extra)

    scenario_ok = action_ok = intent_ok = 0
    exact, word, char = Counts(), Counts(), Counts()
    # Each sentence has several recordings, so the same (gold, predicted) filler pairs recur.
    word_cached, char_cached = functools.cache(word_distance), functools.cache(char_distance)
    for file, reference in gold.items():
        hypothesis = predictions.get(file)
        if hypothesis is None:
            continue
        scenario_ok += hypothesis.scenario == reference.scenario
        action_ok += hypothesis.action == reference.action
        intent_ok += hypothesis.intent == reference.intent
        exact += exact_span_counts(reference.entities, hypothesis.entities)
        word += distance_span_counts(reference.entities, hypothesis.entities, word_cached)
        char += distance_span_counts(reference.entities, hypothesis.entities, char_cached)

    slu = Counts()
    slu += word
    slu += char
    return {
        "intent_acc": _fraction(intent_ok, scored),
        "slu_f1": slu.f1,
        "scenario_acc": _fraction(scenario_ok, scored),
        "action_acc": _fraction(action_ok, scored),
        "slu_f1_word": word.f1,
        "slu_f1_char": char.f1,
        "span_f1": exact.f1,
        "coverage": scored / len(gold),
        "n_gold": len(gold),
        "n_scored": scored,
    }


def score_files(
    ref: str | os.PathLike[str], hyp: str | os.PathLike[str], *, allow_partial: bool = False
) -> dict[str, float]:
    """Score a prediction file against a SLURP annotation file (what ``nestbench score slurp`` runs)."""
    return score_slurp(load_gold(ref), load_predictions(hyp), allow_partial=allow_partial)
