"""Reference and hypothesis texts read from JSONL and paired by id, for the ASR and translation scorers.

Line order never pairs two texts: predictions are often written in length-sorted or sharded order, so
a file is read into ``id -> text`` and the two sides are joined on the id. Accepted lines:

- ``{"id": ..., "text": ...}``, nestbench's own format;
- a NeMo manifest (``text``), and NeMo's transcription output, which copies the input manifest line
  and adds ``pred_text``. A hypothesis takes ``pred_text`` when a line has both (its ``text`` is the
  reference that NeMo copied), so a transcription output can serve as both ``--ref`` and ``--hyp``;
- a line without ``id`` is keyed by its ``audio_filepath`` exactly as written (NeMo's own key); it
  then matches only a line of the other file with the same string.

An id is a string or an integer (read as its decimal string). Every error is a ``TextScoringError``
that names the file and line, or the ids at fault.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..jsonl import iter_jsonl

log = logging.getLogger(__name__)

REFERENCE_KEYS = ("text",)
HYPOTHESIS_KEYS = ("pred_text", "text")  # the first one present wins
ID_KEYS = ("id", "audio_filepath")  # the first one present wins
_SHOWN = 5


class TextScoringError(ValueError):
    """Texts that cannot be scored (bad line, missing or duplicate id, unpaired ids); says where and why."""


def read_texts(path: str | os.PathLike[str], keys: Sequence[str] = REFERENCE_KEYS) -> dict[str, str]:
    """``id -> text`` of a JSONL file, the text taken from the first of ``keys`` that a line has."""
    path = Path(path)
    if not path.is_file():
        raise TextScoringError(f"{path}: file not found")
    texts: dict[str, str] = {}
    first_line: dict[str, int] = {}
    for lineno, _raw, item in iter_jsonl(path, TextScoringError):
        where = f"{path}:{lineno}"
        utt = _id(item, where)
        key = next((k for k in keys if k in item), None)
        if key is None:
            raise TextScoringError(f"{where}: no {' or '.join(repr(k) for k in keys)} key; present: {sorted(item)}")
        if not isinstance(item[key], str):
            raise TextScoringError(f"{where}: {key!r} must be a string, got {type(item[key]).__name__}")
        if utt in first_line:
            raise TextScoringError(f"{where}: duplicate id {utt!r} (first on line {first_line[utt]})")
        first_line[utt] = lineno
        texts[utt] = item[key]
    return texts


def read_references(path: str | os.PathLike[str]) -> dict[str, str]:
    return read_texts(path, REFERENCE_KEYS)


def read_hypotheses(path: str | os.PathLike[str]) -> dict[str, str]:
    return read_texts(path, HYPOTHESIS_KEYS)


def _id(item: dict, where: str) -> str:
    key = next((k for k in ID_KEYS if k in item), None)
    if key is None:
        raise TextScoringError(f"{where}: no 'id' key (nor NeMo's 'audio_filepath' to key the line by)")
    value = item[key]
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise TextScoringError(f"{where}: {key!r} must be a string or an integer, got {type(value).__name__}")
    return str(value)


@dataclass(frozen=True)
class TextPairs:
    """References and hypotheses joined on id, in reference order; ``coverage`` = scored / all references."""

    ids: tuple[str, ...]
    references: tuple[str, ...]
    hypotheses: tuple[str, ...]
    n_references: int

    @property
    def coverage(self) -> float:
        return len(self.ids) / self.n_references


def pair_by_id(
    references: Mapping[str, str], hypotheses: Mapping[str, str], *, allow_partial: bool = False
) -> TextPairs:
    """Join on id. An id on one side only is an error unless ``allow_partial``, which scores the ids both
    sides have (hypotheses without a reference are then ignored, with a warning); no common id is always
    an error, since scores of nothing would read as a result."""
    if not references:
        raise TextScoringError("the reference has no lines: nothing to score")
    missing = [i for i in references if i not in hypotheses]
    extra = [i for i in hypotheses if i not in references]
    ids = tuple(i for i in references if i in hypotheses)
    if missing or extra:
        problems = []
        if missing:
            problems.append(
                f"{len(missing)} of {len(references)} reference ids have no hypothesis ({_listed(missing)})"
            )
        if extra:
            problems.append(f"{len(extra)} hypothesis ids are not in the reference ({_listed(extra)})")
        message = "; ".join(problems)
        if not ids:
            raise TextScoringError(f"{message}: no id in common, nothing to score. Are both files keyed the same way?")
        if not allow_partial:
            raise TextScoringError(
                f"{message}. Pair them all, or use --allow-partial (allow_partial=True from Python) "
                "to score the ids both sides have."
            )
        log.warning("%s; scoring the %d ids both sides have", message, len(ids))
    return TextPairs(
        ids=ids,
        references=tuple(references[i] for i in ids),
        hypotheses=tuple(hypotheses[i] for i in ids),
        n_references=len(references),
    )


def _listed(ids: Sequence[str]) -> str:
    shown = ", ".join(repr(i) for i in ids[:_SHOWN])
    return f"{shown}, ... ({len(ids) - _SHOWN} more)" if len(ids) > _SHOWN else shown
