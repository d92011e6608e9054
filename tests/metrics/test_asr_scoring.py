"""Corpus WER/CER equal to jiwer's on id-paired texts; the normaliser, empty references and the reader by hand."""

import json
from pathlib import Path

import jiwer
import pytest

from nestbench.metrics.asr import NORMALIZER, asr_scores, normalize, score_asr, score_asr_files
from nestbench.metrics.text_pairs import TextScoringError, pair_by_id, read_hypotheses, read_references

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "text_scoring"


def _paired() -> tuple[list[str], list[str]]:
    refs, hyps = read_references(FIXTURES / "ref.jsonl"), read_hypotheses(FIXTURES / "hyp.jsonl")
    return [refs[i] for i in refs], [hyps[i] for i in refs]


def test_fixture_scores_equal_jiwer_on_the_id_paired_lists():
    refs, hyps = _paired()
    words, chars = jiwer.process_words(refs, hyps), jiwer.process_characters(refs, hyps)
    normalized = jiwer.process_words([normalize(r) for r in refs], [normalize(h) for h in hyps])
    scores = score_asr_files(FIXTURES / "ref.jsonl", FIXTURES / "hyp.jsonl")
    assert scores["wer"] == pytest.approx(words.wer)
    assert (scores["substitutions"], scores["deletions"], scores["insertions"], scores["hits"]) == (
        words.substitutions,
        words.deletions,
        words.insertions,
        words.hits,
    )
    assert scores["reference_words"] == sum(len(r.split()) for r in refs)
    assert scores["cer"] == pytest.approx(chars.cer)
    assert scores["wer_normalized"] == pytest.approx(normalized.wer)
    assert scores["wer_normalized"] < scores["wer"]  # case and punctuation errors are gone
    assert scores["n_utterances"] == 8 and scores["coverage"] == 1.0
    assert scores["convention"]["normalization"] == "none"
    assert scores["convention"]["wer_normalized_normalizer"] == NORMALIZER


def test_pairing_is_by_id_not_line_order():
    refs = read_references(FIXTURES / "ref.jsonl")
    in_line_order = [json.loads(line)["text"] for line in (FIXTURES / "hyp.jsonl").read_text().splitlines()]
    by_line = jiwer.process_words(list(refs.values()), in_line_order).wer
    scores = score_asr_files(FIXTURES / "ref.jsonl", FIXTURES / "hyp.jsonl")
    assert scores["wer"] != pytest.approx(by_line)  # the fixture would catch a line-order scorer
    reversed_refs = dict(reversed(refs.items()))
    assert asr_scores(reversed_refs, read_hypotheses(FIXTURES / "hyp.jsonl")) == scores


def test_a_nemo_transcription_output_is_both_reference_and_hypothesis():
    nemo = FIXTURES / "nemo_transcribed.jsonl"
    assert read_references(nemo)["audio/u01.wav"].endswith("jumps over the lazy dog.")  # text
    assert read_hypotheses(nemo)["audio/u01.wav"].endswith("jumped over the lazy dog.")  # pred_text wins
    assert score_asr_files(nemo, nemo) == score_asr_files(FIXTURES / "ref.jsonl", FIXTURES / "hyp.jsonl")


def test_an_empty_reference_adds_its_hypothesis_words_as_insertions():
    # by hand: "one two" vs "one": 1 hit, 1 deletion; "" vs "x y z": 3 insertions; WER = 4 / 2
    score = score_asr({"a": "one two", "b": ""}, {"a": "one", "b": "x y z"})
    assert (score.hits, score.deletions, score.insertions, score.substitutions) == (1, 1, 3, 0)
    assert score.reference_words == 2 and score.wer == 2.0
    assert score.cer == pytest.approx((4 + 5) / 7)  # "one two" -> "one": 4 deleted chars; "x y z": 5 inserted
    assert [u["errors"] for u in score.per_utterance()] == [1, 3]
    # jiwer without the empty pair, plus the insertions, is the same total
    alone = jiwer.process_words(["one two"], ["one"])
    assert score.wer == (alone.substitutions + alone.deletions + alone.insertions + 3) / 2


def test_only_empty_references_is_refused():
    with pytest.raises(TextScoringError, match="no words"):
        score_asr({"a": ""}, {"a": "x"})


def test_per_utterance_rows_sum_to_the_corpus_counts():
    score = score_asr(read_references(FIXTURES / "ref.jsonl"), read_hypotheses(FIXTURES / "hyp.jsonl"))
    rows = score.per_utterance()
    assert [r["id"] for r in rows] == [f"u0{i}" for i in range(1, 9)]
    assert rows[0]["ref"].startswith("The quick") and rows[0]["hyp"].startswith("The quick")
    assert sum(r["errors"] for r in rows) == score.substitutions + score.deletions + score.insertions
    assert sum(r["reference_words"] for r in rows) == score.reference_words


def test_words_are_split_on_any_whitespace():
    assert score_asr({"a": "one\ttwo  three"}, {"a": "one two\nthree"}).wer == 0.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hello, World!", "hello world"),
        ("L'homme d’affaires -- e-mail, 'quoted' don't.", "l'homme d'affaires e-mail quoted don't"),
        ("¿Qué  TAL?\t¡Bien!", "qué tal bien"),
        ("ＡＢＣ ﬁ", "abc fi"),  # NFKC: full-width letters, ligature
        ("Straße", "straße"),  # lower-case, not case-folded
        ("नमस्ते, दुनिया।", "नमस्ते दुनिया"),  # combining marks stay, the danda goes
    ],
)
def test_normalize(text, expected):
    assert normalize(text) == expected


def test_partial_pairing_reports_coverage():
    refs = {"a": "x", "b": "y", "c": "z", "d": "w"}
    with pytest.raises(TextScoringError, match=r"1 of 4 reference ids have no hypothesis \('d'\)"):
        pair_by_id(refs, {"a": "x", "b": "y", "c": "z"})
    assert asr_scores(refs, {"a": "x", "b": "y", "c": "z", "e": "v"}, allow_partial=True)["coverage"] == 0.75
    with pytest.raises(TextScoringError, match="no id in common"):
        pair_by_id(refs, {"e": "v"}, allow_partial=True)


def test_long_id_lists_show_the_first_few_and_the_count():
    refs = {f"r{i}": "x" for i in range(12)}
    with pytest.raises(TextScoringError, match=r"12 of 12 reference ids .*'r4', \.\.\. \(7 more\)"):
        pair_by_id(refs, {"h": "x"})


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (['{"id": "a", "text": "x"}', "{not json"], r"ref\.jsonl:2: not valid JSON"),
        (['{"id": "a", "txt": "x"}'], r"ref\.jsonl:1: no 'text' key"),
        (['{"id": "a", "text": 3}'], r"ref\.jsonl:1: 'text' must be a string, got int"),
        (['{"id": "a", "text": null}'], r"ref\.jsonl:1: 'text' must be a string, got NoneType"),
        (['{"text": "x"}'], r"ref\.jsonl:1: no 'id' key"),
        (['{"id": ["a"], "text": "x"}'], r"ref\.jsonl:1: 'id' must be a string or an integer"),
        (['{"id": "a", "text": "x"}', "", '{"id": "a", "text": "y"}'], r"ref\.jsonl:3: duplicate id 'a' .*line 1"),
    ],
)
def test_reader_errors_name_file_and_line(tmp_path, lines, message):
    path = tmp_path / "ref.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(TextScoringError, match=message):
        read_references(path)


def test_integer_ids_pair_with_their_string_form(tmp_path):
    (tmp_path / "ref.jsonl").write_text('{"id": 7, "text": "a b"}\n')
    (tmp_path / "hyp.jsonl").write_text('{"id": "7", "text": "a c"}\n')
    assert score_asr_files(tmp_path / "ref.jsonl", tmp_path / "hyp.jsonl")["wer"] == 0.5
