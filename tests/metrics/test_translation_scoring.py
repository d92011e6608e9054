"""Corpus BLEU and chrF equal to sacrebleu's own on id-paired texts, with sacrebleu's signatures."""

import json
from pathlib import Path

import pytest
import sacrebleu

from nestbench.metrics.text_pairs import TextScoringError, read_hypotheses, read_references
from nestbench.metrics.translation import score_translation_files, translation_scores

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "text_scoring"


def _paired() -> tuple[list[str], list[str]]:
    refs, hyps = read_references(FIXTURES / "ref.jsonl"), read_hypotheses(FIXTURES / "hyp.jsonl")
    return [refs[i] for i in refs], [hyps[i] for i in refs]


def test_fixture_scores_equal_sacrebleu_on_the_id_paired_lists():
    refs, hyps = _paired()
    bleu, chrf = sacrebleu.corpus_bleu(hyps, [refs]), sacrebleu.corpus_chrf(hyps, [refs])
    scores = score_translation_files(FIXTURES / "ref.jsonl", FIXTURES / "hyp.jsonl")
    assert scores["bleu"] == pytest.approx(bleu.score) and 0 < scores["bleu"] < 100
    assert scores["chrf"] == pytest.approx(chrf.score)
    assert scores["bleu_brevity_penalty"] == pytest.approx(bleu.bp)
    assert scores["bleu_precisions"] == pytest.approx(bleu.precisions)
    assert (scores["hyp_length"], scores["ref_length"]) == (bleu.sys_len, bleu.ref_len)
    assert scores["n_segments"] == 8 and scores["coverage"] == 1.0


def test_signatures_are_sacrebleus_own():
    scores = score_translation_files(FIXTURES / "ref.jsonl", FIXTURES / "hyp.jsonl")
    version = sacrebleu.__version__
    assert scores["bleu_signature"] == f"nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:{version}"
    assert scores["chrf_signature"] == f"nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|version:{version}"
    assert scores["convention"] == {"units": "bleu", "signature": scores["bleu_signature"]}


def test_pairing_is_by_id_not_line_order():
    refs, _ = _paired()
    in_line_order = [json.loads(line)["text"] for line in (FIXTURES / "hyp.jsonl").read_text().splitlines()]
    scores = score_translation_files(FIXTURES / "ref.jsonl", FIXTURES / "hyp.jsonl")
    assert scores["bleu"] != pytest.approx(sacrebleu.corpus_bleu(in_line_order, [refs]).score)
    nemo = FIXTURES / "nemo_transcribed.jsonl"  # same pairs keyed by audio_filepath, pred_text as hypothesis
    assert score_translation_files(nemo, nemo) == scores


def test_a_perfect_translation_scores_100_and_cased_mismatches_count():
    refs = {"a": "Das ist ein kleiner Test.", "b": "Noch ein Satz hier."}
    assert translation_scores(refs, dict(refs))["bleu"] == pytest.approx(100.0)
    lower = {k: v.lower() for k, v in refs.items()}
    assert translation_scores(refs, lower)["bleu"] < 100.0  # case:mixed


def test_tokenize_is_recorded_in_the_signature():
    scores = translation_scores({"a": "我们去吃饭吧"}, {"a": "我们去吃饭"}, tokenize="zh")
    assert "tok:zh" in scores["bleu_signature"]
    assert scores["bleu"] == pytest.approx(
        sacrebleu.corpus_bleu(["我们去吃饭"], [["我们去吃饭吧"]], tokenize="zh").score
    )


def test_unpaired_ids_are_refused_unless_partial():
    refs = {"a": "Das ist der erste Satz.", "b": "Und hier kommt der zweite."}
    with pytest.raises(TextScoringError, match=r"reference ids have no hypothesis \('b'\)"):
        translation_scores(refs, {"a": refs["a"]})
    scores = translation_scores(refs, {"a": refs["a"]}, allow_partial=True)  # "a" alone: a perfect match
    assert scores["coverage"] == 0.5 and scores["bleu"] == pytest.approx(100.0)
