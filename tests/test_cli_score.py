"""`nestbench score slurp` prints the official SLURP scores of existing predictions as JSON."""

import json
from pathlib import Path

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
