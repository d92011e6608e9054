"""`nestbench score slurp|asr|ast` prints the scores of existing predictions as JSON; bad input is one line, exit 2."""

import json
from pathlib import Path

import pytest

from nestbench.cli import main

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "slurp"


def test_score_slurp_cli_prints_official_metrics(capsys):
    assert (
        main(
            [
                "score",
                "slurp",
                "--ref",
                str(FIXTURES / "small_gold.jsonl"),
                "--hyp",
                str(FIXTURES / "small_predictions.jsonl"),
            ]
        )
        == 0
    )
    scores = json.loads(capsys.readouterr().out)
    for key in ("intent_acc", "slu_f1", "scenario_acc", "action_acc", "slu_f1_word", "slu_f1_char"):
        assert 0.0 <= scores[key] <= 1.0
    assert scores["intent_acc"] == 0.8 and abs(scores["slu_f1"] - 0.516838) < 1e-6  # the official evaluator's output


def test_score_slurp_cli_names_a_bad_file(tmp_path, capsys):
    bad = tmp_path / "pred.jsonl"
    bad.write_text("{not json\n")
    assert main(["score", "slurp", "--ref", str(FIXTURES / "small_gold.jsonl"), "--hyp", str(bad)]) == 2
    assert "pred.jsonl:1" in capsys.readouterr().err


def test_score_slurp_cli_refuses_an_empty_hypothesis_even_with_allow_partial(tmp_path, capsys):
    empty = tmp_path / "pred.jsonl"
    empty.write_text("")
    argv = ["score", "slurp", "--ref", str(FIXTURES / "small_gold.jsonl"), "--hyp", str(empty), "--allow-partial"]
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and "nothing to score" in err and "Traceback" not in err


# --- `nestbench score asr|ast`: texts paired by id, scored by jiwer and sacrebleu --------------------

TEXTS = Path(__file__).resolve().parent / "fixtures" / "text_scoring"


def _score(capsys, verb: str, ref: Path, hyp: Path, *extra: str) -> dict:
    assert main(["score", verb, "--ref", str(ref), "--hyp", str(hyp), *extra]) == 0
    return json.loads(capsys.readouterr().out)


def _texts_by_id() -> tuple[list[str], list[str]]:
    def read(name: str) -> dict[str, str]:
        return {d["id"]: d["text"] for d in map(json.loads, (TEXTS / name).read_text().splitlines())}

    refs, hyps = read("ref.jsonl"), read("hyp.jsonl")
    return list(refs.values()), [hyps[i] for i in refs]


def test_score_asr_cli_equals_jiwer_on_the_id_paired_lists(capsys):
    import jiwer

    refs, hyps = _texts_by_id()
    expected = jiwer.process_words(refs, hyps)
    scores = _score(capsys, "asr", TEXTS / "ref.jsonl", TEXTS / "hyp.jsonl")
    assert scores["wer"] == pytest.approx(expected.wer)
    assert scores["cer"] == pytest.approx(jiwer.process_characters(refs, hyps).cer)
    for key in ("substitutions", "deletions", "insertions", "hits"):
        assert scores[key] == getattr(expected, key)
    assert scores["n_utterances"] == len(refs) and scores["coverage"] == 1.0


def test_score_ast_cli_equals_sacrebleu_on_the_id_paired_lists(capsys):
    import sacrebleu

    refs, hyps = _texts_by_id()
    scores = _score(capsys, "ast", TEXTS / "ref.jsonl", TEXTS / "hyp.jsonl")
    assert scores["bleu"] == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs]).score)
    assert scores["chrf"] == pytest.approx(sacrebleu.corpus_chrf(hyps, [refs]).score)
    assert scores["bleu_signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:")


@pytest.mark.parametrize("verb", ["asr", "ast"])
def test_score_text_cli_pairs_by_id_whatever_the_line_order(tmp_path, capsys, verb):
    lines = (TEXTS / "ref.jsonl").read_text().splitlines()
    reordered = tmp_path / "ref.jsonl"
    reordered.write_text("\n".join(lines[3:] + lines[:3]) + "\n")
    scores = _score(capsys, verb, TEXTS / "ref.jsonl", TEXTS / "hyp.jsonl")
    assert _score(capsys, verb, reordered, TEXTS / "hyp.jsonl") == scores
    nemo = TEXTS / "nemo_transcribed.jsonl"  # NeMo's output: text is the reference, pred_text the hypothesis
    assert _score(capsys, verb, nemo, nemo) == scores


def test_score_asr_cli_counts_an_empty_reference_as_insertions(tmp_path, capsys):
    ref, hyp = tmp_path / "ref.jsonl", tmp_path / "hyp.jsonl"
    ref.write_text('{"id": "a", "text": "Hello world."}\n{"id": "b", "text": ""}\n')
    hyp.write_text('{"id": "b", "text": "uh, well"}\n{"id": "a", "text": "Hello world."}\n')
    scores = _score(capsys, "asr", ref, hyp)
    # by hand: "a" is exact (2 hits); "b" has no reference words, so both hypothesis words are insertions
    assert (scores["hits"], scores["insertions"], scores["reference_words"], scores["wer"]) == (2, 2, 2, 1.0)


def _refused(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and "Traceback" not in err and len(err.strip().splitlines()) == 1
    return err


@pytest.mark.parametrize("verb", ["asr", "ast"])
def test_score_text_cli_lists_unpaired_ids_and_scores_them_partially_when_told(tmp_path, capsys, verb):
    hyp = tmp_path / "hyp.jsonl"
    lines = (TEXTS / "hyp.jsonl").read_text().splitlines()
    hyp.write_text("\n".join(lines[:6] + ['{"id": "extra", "text": "x"}']) + "\n")  # drops u02, u04
    argv = ["score", verb, "--ref", str(TEXTS / "ref.jsonl"), "--hyp", str(hyp)]
    err = _refused(capsys, argv)
    assert "2 of 8 reference ids have no hypothesis ('u02', 'u04')" in err
    assert "1 hypothesis ids are not in the reference ('extra')" in err and "--allow-partial" in err
    assert _score(capsys, verb, TEXTS / "ref.jsonl", hyp, "--allow-partial")["coverage"] == 6 / 8


@pytest.mark.parametrize("verb", ["asr", "ast"])
@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "hyp.jsonl:3: not valid JSON"),
        ('{"id": "u09", "txt": "x"}', "hyp.jsonl:3: no 'pred_text' or 'text' key"),
        ('{"id": "u09", "text": 5}', "hyp.jsonl:3: 'text' must be a string"),
        ('{"id": "u06", "text": "again"}', "hyp.jsonl:3: duplicate id 'u06' (first on line 1)"),
    ],
)
def test_score_text_cli_names_the_bad_line(tmp_path, capsys, verb, line, message):
    hyp = tmp_path / "hyp.jsonl"
    lines = (TEXTS / "hyp.jsonl").read_text().splitlines()
    hyp.write_text("\n".join([*lines[:2], line, *lines[2:]]) + "\n")
    err = _refused(capsys, ["score", verb, "--ref", str(TEXTS / "ref.jsonl"), "--hyp", str(hyp)])
    assert message in err
