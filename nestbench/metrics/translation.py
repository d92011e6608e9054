"""Corpus BLEU and chrF of speech translations, as sacrebleu computes them, with sacrebleu's signatures.

Convention (``../shared/reference/metrics.md``, section BLEU): detokenised, cased text as written,
one reference per segment, sacrebleu's default ``13a`` tokenizer and ``exp`` smoothing, on sacrebleu's
0-100 scale. A BLEU means nothing without its settings, so each score is stored beside sacrebleu's
own signature string (``nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:...``), which the
leaderboard checks. ``tokenize`` is there for zh/ja targets only ("zh", "ja-mecab"), where 13a does
not split words; the signature records it. chrF is sacrebleu's default (chrF2: character 6-grams, no
word n-grams).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from .text_pairs import pair_by_id, read_hypotheses, read_references


def translation_scores(
    references: Mapping[str, str],
    hypotheses: Mapping[str, str],
    *,
    allow_partial: bool = False,
    tokenize: str = "13a",
) -> dict[str, Any]:
    """BLEU and chrF (0-100) of ``hypotheses`` against ``references`` (both id -> text), paired by id."""
    from sacrebleu.metrics import BLEU, CHRF

    pairs = pair_by_id(references, hypotheses, allow_partial=allow_partial)
    hyps, refs = list(pairs.hypotheses), [list(pairs.references)]
    bleu_metric, chrf_metric = BLEU(tokenize=tokenize), CHRF()
    bleu, chrf = bleu_metric.corpus_score(hyps, refs), chrf_metric.corpus_score(hyps, refs)
    bleu_signature = str(bleu_metric.get_signature())
    return {
        "bleu": bleu.score,
        "bleu_signature": bleu_signature,
        "bleu_precisions": list(bleu.precisions),
        "bleu_brevity_penalty": bleu.bp,
        "hyp_length": bleu.sys_len,
        "ref_length": bleu.ref_len,
        "chrf": chrf.score,
        "chrf_signature": str(chrf_metric.get_signature()),
        "n_segments": len(pairs.ids),
        "n_references": pairs.n_references,
        "coverage": pairs.coverage,
        "convention": {"units": "bleu", "signature": bleu_signature},
    }


def bleu_signature(tokenize: str = "13a") -> str:
    """The signature ``translation_scores`` stores, known before anything is scored (for a run's convention).

    sacrebleu's signature includes the number of reference streams, which it learns only by scoring: one
    throwaway segment with one reference sets it, as every nestbench score has."""
    from sacrebleu.metrics import BLEU

    bleu = BLEU(tokenize=tokenize)
    bleu.corpus_score(["a"], [["a"]])
    return str(bleu.get_signature())


def score_translation_files(
    ref: str | os.PathLike[str], hyp: str | os.PathLike[str], *, allow_partial: bool = False, tokenize: str = "13a"
) -> dict[str, Any]:
    """Score two JSONL text files (``text_pairs``' formats): what ``nestbench score ast`` prints."""
    return translation_scores(
        read_references(ref), read_hypotheses(hyp), allow_partial=allow_partial, tokenize=tokenize
    )
