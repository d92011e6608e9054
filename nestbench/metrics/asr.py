"""Corpus word and character error rates (jiwer), on raw strings and after a basic normaliser.

Conventions (``../shared/reference/metrics.md``, section WER), recorded in ``convention``:

- corpus level: total edits over total reference words (characters for CER), never a mean of
  per-utterance rates; fractions, which pass 1.0 when insertions are many;
- ``wer`` and ``cer`` score the raw strings, case and punctuation kept: the NEST card's MCV WER "with
  punctuation and capitalisation". Only whitespace is touched: every run of it (tabs, newlines
  included) is one word boundary, as NeMo's ``word_error_rate`` splits words (jiwer alone would keep
  a tab inside a word). CER counts the single spaces left between words as characters, as jiwer does;
- ``wer_normalized`` scores both sides after ``normalize`` (``NORMALIZER``), a basic normaliser for
  every language; it is not Whisper's English normaliser (no contractions, numbers or spellings);
- an empty reference (after normalising, for ``wer_normalized``) scores as the field scores it: each
  of its hypothesis words is an insertion and it adds no reference words. jiwer only ever sees the
  non-empty pairs (some versions refuse empty references), so the totals are jiwer's on those pairs
  plus those insertions.
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from importlib.metadata import version
from typing import Any, Literal

from .text_pairs import TextScoringError, pair_by_id, read_hypotheses, read_references

NORMALIZER = (
    "basic: NFKC, lower-case, punctuation removed except word-internal apostrophes and hyphens "
    "(typographic ones as ' and -), whitespace collapsed"
)
WORDS = "whitespace-separated (every run of whitespace is one boundary)"
COUNTS = ("substitutions", "deletions", "insertions", "hits")
_KEPT_INSIDE_WORDS = {"'": "'", "\u2019": "'", "-": "-", "\u2010": "-"}  # ’ and ‐ (NFKC leaves them)


def normalize(text: str) -> str:
    """``NORMALIZER``: a punctuation mark becomes a space unless it is an apostrophe or hyphen between
    two word characters (letters, marks, digits), as in "l'homme" or "e-mail"."""
    text = unicodedata.normalize("NFKC", text).lower()
    out = []
    for i, ch in enumerate(text):
        if not unicodedata.category(ch).startswith("P"):
            out.append(ch)
        elif ch in _KEPT_INSIDE_WORDS and 0 < i < len(text) - 1 and _word_char(text[i - 1]) and _word_char(text[i + 1]):
            out.append(_KEPT_INSIDE_WORDS[ch])
        else:
            out.append(" ")
    return _collapse("".join(out))


def _word_char(ch: str) -> bool:
    return unicodedata.category(ch)[0] in "LMN"


def _collapse(text: str) -> str:
    return " ".join(text.split())


@dataclass(frozen=True)
class EditCounts:
    """Levenshtein alignment counts of one pair of token sequences (words or characters)."""

    substitutions: int = 0
    deletions: int = 0
    insertions: int = 0
    hits: int = 0

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def reference_length(self) -> int:
        return self.substitutions + self.deletions + self.hits

    def __add__(self, other: EditCounts) -> EditCounts:
        return EditCounts(*(getattr(self, k) + getattr(other, k) for k in COUNTS))


def edit_counts(
    references: Sequence[str], hypotheses: Sequence[str], *, unit: Literal["word", "char"] = "word"
) -> list[EditCounts]:
    """Per pair counts from jiwer's alignment, ``unit`` "word" or "char"; texts must be whitespace-collapsed.

    An empty reference gets no alignment: all its hypothesis tokens are insertions.
    """
    import jiwer

    process: Callable[..., Any] = {"word": jiwer.process_words, "char": jiwer.process_characters}[unit]
    tokens: Callable[[str], Sequence[str]] = str.split if unit == "word" else list
    counts = [
        EditCounts(insertions=len(tokens(h))) if not r else EditCounts()
        for r, h in zip(references, hypotheses, strict=True)
    ]
    scored = [i for i, r in enumerate(references) if r]
    if scored:
        out = process([references[i] for i in scored], [hypotheses[i] for i in scored])
        for i, chunks in zip(scored, out.alignments, strict=True):
            counts[i] = _from_alignment(chunks)
    return counts


def _from_alignment(chunks: Sequence[Any]) -> EditCounts:
    """Counts of one sentence's jiwer ``AlignmentChunk``s."""
    n = dict.fromkeys(("equal", "substitute", "delete", "insert"), 0)
    for c in chunks:
        n[c.type] += (c.hyp_end_idx - c.hyp_start_idx) if c.type == "insert" else (c.ref_end_idx - c.ref_start_idx)
    return EditCounts(n["substitute"], n["delete"], n["insert"], n["equal"])


def _rate(total: EditCounts, what: str) -> float:
    if total.reference_length == 0:
        raise TextScoringError(f"the scored references have no {what}: the error rate is undefined")
    return total.errors / total.reference_length


@dataclass(frozen=True)
class UtteranceErrors:
    """One utterance's raw-string word errors, for a per-utterance file."""

    id: str
    ref: str
    hyp: str
    counts: EditCounts

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "ref": self.ref,
            "hyp": self.hyp,
            "errors": self.counts.errors,
            "reference_words": self.counts.reference_length,
            **asdict(self.counts),
        }


@dataclass(frozen=True)
class AsrScore:
    """Corpus rates (fractions) and raw word counts; ``utterances`` holds each one's raw word errors."""

    wer: float
    wer_normalized: float
    cer: float
    substitutions: int
    deletions: int
    insertions: int
    hits: int
    reference_words: int
    n_utterances: int
    n_references: int
    coverage: float
    convention: dict[str, Any]
    utterances: tuple[UtteranceErrors, ...] = field(default=(), repr=False)

    def as_dict(self) -> dict[str, Any]:
        """The summary, JSON-able (per-utterance rows are ``per_utterance()``)."""
        return {k: v for k, v in asdict(self).items() if k != "utterances"}

    def per_utterance(self) -> list[dict[str, Any]]:
        return [u.as_dict() for u in self.utterances]


def score_asr(references: Mapping[str, str], hypotheses: Mapping[str, str], *, allow_partial: bool = False) -> AsrScore:
    """WER, normalised WER and CER of ``hypotheses`` against ``references`` (both id -> text), paired by id."""
    pairs = pair_by_id(references, hypotheses, allow_partial=allow_partial)
    refs, hyps = [_collapse(r) for r in pairs.references], [_collapse(h) for h in pairs.hypotheses]
    words = edit_counts(refs, hyps, unit="word")
    total = sum(words, EditCounts())
    normalized = sum(edit_counts([normalize(r) for r in refs], [normalize(h) for h in hyps]), EditCounts())
    chars = sum(edit_counts(refs, hyps, unit="char"), EditCounts())
    return AsrScore(
        wer=_rate(total, "words"),
        wer_normalized=_rate(normalized, "words after normalisation"),
        cer=_rate(chars, "characters"),
        **asdict(total),
        reference_words=total.reference_length,
        n_utterances=len(pairs.ids),
        n_references=pairs.n_references,
        coverage=pairs.coverage,
        convention={
            "units": "fraction",
            "level": "corpus: total edits / total reference words (characters for cer)",
            "normalization": "none",  # of wer and cer; wer_normalized's is the next key
            "wer_normalized_normalizer": NORMALIZER,
            "words": WORDS,
            "scorer": f"jiwer {version('jiwer')}",
        },
        utterances=tuple(
            UtteranceErrors(i, r, h, c)
            for i, r, h, c in zip(pairs.ids, pairs.references, pairs.hypotheses, words, strict=True)
        ),
    )


def asr_scores(
    references: Mapping[str, str], hypotheses: Mapping[str, str], *, allow_partial: bool = False
) -> dict[str, Any]:
    """``score_asr``'s summary as a dict."""
    return score_asr(references, hypotheses, allow_partial=allow_partial).as_dict()


def score_asr_files(
    ref: str | os.PathLike[str], hyp: str | os.PathLike[str], *, allow_partial: bool = False
) -> dict[str, Any]:
    """Score two JSONL text files (``text_pairs``' formats): what ``nestbench score asr`` prints."""
    return asr_scores(read_references(ref), read_hypotheses(hyp), allow_partial=allow_partial)
