"""SLURP scorer: hand-worked cases, real SLURP annotation files, and parity with the official evaluator."""

from __future__ import annotations

import gzip
import importlib.util
import json
from pathlib import Path

import pytest

from nestbench.metrics.slurp import (
    METRICS,
    Counts,
    SlotValue,
    SluPrediction,
    SlurpFormatError,
    char_distance,
    distance_span_counts,
    exact_span_counts,
    load_gold,
    load_predictions,
    score_files,
    score_slurp,
    word_distance,
    write_predictions,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "slurp"
SLURP_DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "slurp"
OFFICIAL_NAMES = {
    "Scenario": "scenario_acc",
    "Action": "action_acc",
    "Intent (scen_act)": "intent_acc",
    "Entities": "span_f1",
    "Entities (distance word)": "slu_f1_word",
    "Entities (distance char)": "slu_f1_char",
    "Slu f1": "slu_f1",
}


def shared_file(name: str) -> Path:
    path = SLURP_DATA / name
    if not path.is_file():
        pytest.skip(f"{path} not present (../shared is only beside the development checkout)")
    return path


def official_numbers(path: Path) -> dict[str, dict[str, float]]:
    """Parse the evaluator's `--errors --table-layout csv` output: a header line, then an OVERALL row."""
    tables: dict[str, dict[str, float]] = {}
    header = None
    for line in path.read_text(encoding="utf-8").splitlines():
        cells = line.strip().split(",")
        if cells[0] == "OVERALL" and header is not None:
            values = dict(zip(header[1:], map(float, cells[1:]), strict=True))
            tables[OFFICIAL_NAMES[header[0]]] = values
        elif len(cells) == 7:
            header = cells
    assert set(tables) == set(OFFICIAL_NAMES.values())
    return tables


def tally(gold: dict[str, SluPrediction], predictions: dict[str, SluPrediction]) -> dict[str, Counts]:
    """TP/FP/FN summed over the scored recordings, to compare with the evaluator's --errors columns."""
    totals = {"span_f1": Counts(), "slu_f1_word": Counts(), "slu_f1_char": Counts()}
    for file, reference in gold.items():
        if file in predictions:
            slots = reference.entities, predictions[file].entities
            totals["span_f1"] += exact_span_counts(*slots)
            totals["slu_f1_word"] += distance_span_counts(*slots, word_distance)
            totals["slu_f1_char"] += distance_span_counts(*slots, char_distance)
    return totals


def assert_matches_official(scores: dict, gold: dict, predictions: dict, official_file: Path) -> None:
    official = official_numbers(official_file)
    for key, table in official.items():
        assert scores[key] == pytest.approx(table["F-Measure"], abs=1e-9), key
    counts = tally(gold, predictions)
    for key, c in counts.items():
        table = official[key]
        assert (c.tp, c.fp, c.fn) == pytest.approx((table["TP"], table["FP"], table["FN"]), abs=1e-9), key
    slu = official["slu_f1"]
    assert 2 * counts["slu_f1_word"].tp == slu["TP"]
    assert scores["n_scored"] == official["intent_acc"]["TP"] + official["intent_acc"]["FP"]


def slots(*pairs: tuple[str, str]) -> tuple[SlotValue, ...]:
    return tuple(SlotValue(t, f) for t, f in pairs)


# --- distances and per-recording counts ----------------------------------------------------------


def test_word_distance_is_a_wer_that_can_exceed_one():
    assert word_distance("five am", "five am") == 0.0
    assert word_distance("five am", "Five am") == 0.5  # case-sensitive
    assert word_distance("five am", "five am five am five") == 1.5
    assert word_distance("five am", "") == 1.0
    assert word_distance("five am", "  five   am ") == 0.0  # runs of whitespace collapse
    assert word_distance("five am", "five\tam") == 1.0  # jiwer 2.0: a single tab does not split words
    with pytest.raises(ValueError, match="no words"):
        word_distance(" ", "x")


def test_char_distance_is_normalised_levenshtein():
    assert char_distance("five am", "Five am") == pytest.approx(1 / 7)
    assert char_distance("jazz", "rock jazz") == pytest.approx(5 / 9)
    assert char_distance("abc", "") == 1.0
    assert char_distance("", "") == 1.0  # textdistance 4.1's convention, kept for parity


def test_distance_matching_is_greedy_in_prediction_order_with_first_gold_on_ties():
    gold = slots(("genre", "jazz"), ("genre", "rock"))
    predicted = slots(("genre", "rock jazz"), ("genre", "jazz"))
    # "rock jazz" is 1 word edit from both; the tie goes to the first gold ("jazz"), leaving "rock" for "jazz".
    counts = distance_span_counts(gold, predicted, word_distance)
    assert (counts.tp, counts.fp, counts.fn) == (2, 2, 2)
    # In the other order the optimal assignment happens to be found.
    counts = distance_span_counts(gold, tuple(reversed(predicted)), word_distance)
    assert (counts.tp, counts.fp, counts.fn) == (2, 1, 1)


def test_unmatched_types_and_leftover_gold():
    gold = slots(("time", "five am"), ("date", "today"))
    predicted = slots(("place", "home"), ("time", "five am"), ("time", "six"))
    counts = distance_span_counts(gold, predicted, char_distance)
    # place: not in gold -> FP 1; time: exact -> TP 1; second time: its gold is used -> FP 1; date unmatched -> FN 1
    assert (counts.tp, counts.fp, counts.fn) == (1, 2, 1)
    exact = exact_span_counts(gold, predicted)
    assert (exact.tp, exact.fp, exact.fn) == (1, 2, 1)


def test_exact_match_uses_each_gold_slot_once_and_is_case_sensitive():
    gold = slots(("genre", "jazz"))
    counts = exact_span_counts(gold, slots(("genre", "jazz"), ("genre", "jazz"), ("genre", "Jazz")))
    assert (counts.tp, counts.fp, counts.fn) == (1, 2, 0)


def test_empty_counts_score_zero_like_the_evaluator():
    assert Counts().f1 == 0.0
    assert Counts(tp=0, fp=3, fn=1).f1 == 0.0


# --- the small committed fixture, worked by hand ---------------------------------------------------


def test_small_fixture_hand_worked():
    gold = load_gold(FIXTURES / "small_gold.jsonl")
    predictions = load_predictions(FIXTURES / "small_predictions.jsonl")
    assert gold["audio-1.flac"].entities == slots(("time", "five am"), ("date", "tomorrow"))  # lower-cased
    assert gold["audio-2-headset.flac"].intent == "play_music"  # not the file's intent field "music"
    scores = score_slurp(gold, predictions)
    assert list(scores) == list(METRICS)

    def f1(tp: float, fp: float, fn: float) -> float:
        return Counts(tp, fp, fn).f1

    char_fp = 13 / 20 + (1 + 1 / 7) + (5 / 9 + 1 + 1)
    char_fn = 13 / 20 + (1 + 1 / 7) + (5 / 9 + 1)
    expected = {
        "intent_acc": 4 / 5,  # audio-1 is alarm_query; iot_hue + lightup joins to gold's iot_hue_lightup
        "scenario_acc": 4 / 5,
        "action_acc": 3 / 5,
        "span_f1": 4 / 13,  # TP 2, FP 5, FN 4
        "slu_f1_word": 10 / 21,  # TP 5, FP 6 (1.5 + 1.5 + 3), FN 5
        "slu_f1_char": f1(5, char_fp, char_fn),
        "slu_f1": f1(10, 6 + char_fp, 5 + char_fn),
        "coverage": 1.0,
        "n_gold": 5,
        "n_scored": 5,
    }
    assert scores == pytest.approx(expected, abs=1e-12)
    assert_matches_official(scores, gold, predictions, FIXTURES / "official_small.txt")


def test_gold_as_prediction_scores_one_everywhere(tmp_path):
    gold = load_gold(FIXTURES / "small_gold.jsonl")
    write_predictions(tmp_path / "gold_as_hyp.jsonl", gold.values())
    scores = score_files(FIXTURES / "small_gold.jsonl", tmp_path / "gold_as_hyp.jsonl")
    assert all(scores[key] == 1.0 for key in METRICS if not key.startswith("n_"))


def test_write_then_load_round_trips(tmp_path):
    predictions = [SluPrediction("a.flac", "alarm", "set", slots(("time", "Five  AM"), ("date", "caf\u00e9")))]
    write_predictions(tmp_path / "p.jsonl", predictions)
    assert load_predictions(tmp_path / "p.jsonl") == {"a.flac": predictions[0]}
    assert list(tmp_path.iterdir()) == [tmp_path / "p.jsonl"]  # no temporary left behind


def test_partial_coverage_is_refused_unless_allowed():
    gold = load_gold(FIXTURES / "small_gold.jsonl")
    predictions = load_predictions(FIXTURES / "small_predictions.jsonl")
    del predictions["audio-3.flac"], predictions["audio-1.flac"]
    with pytest.raises(ValueError, match=r"cover 3 of 5 .* 2 have no prediction .*audio-1\.flac, audio-3\.flac"):
        score_slurp(gold, predictions)
    scores = score_slurp(gold, predictions, allow_partial=True)
    assert (scores["coverage"], scores["n_gold"], scores["n_scored"]) == (0.6, 5, 3)
    assert scores["intent_acc"] == 1.0  # over the scored recordings, as the evaluator does


def test_partial_refusal_names_the_command_line_flag_too():
    gold = load_gold(FIXTURES / "small_gold.jsonl")
    predictions = load_predictions(FIXTURES / "small_predictions.jsonl")
    del predictions["audio-1.flac"]
    with pytest.raises(ValueError, match=r"use --allow-partial \(allow_partial=True from Python\)"):
        score_slurp(gold, predictions)


@pytest.mark.parametrize("keyed", ["nothing", "other files"])
def test_scoring_nothing_is_refused_even_when_partial_is_allowed(keyed):
    gold = load_gold(FIXTURES / "small_gold.jsonl")
    predictions = {} if keyed == "nothing" else {"x.flac": SluPrediction("x.flac", "alarm", "set")}
    with pytest.raises(ValueError, match=r"cover 0 of 5 .*nothing to score"):
        score_slurp(gold, predictions, allow_partial=True)


def test_predictions_for_unknown_files_are_ignored():
    gold = load_gold(FIXTURES / "small_gold.jsonl")
    predictions = dict(gold)
    predictions["elsewhere.flac"] = SluPrediction("elsewhere.flac", "x", "y")
    assert score_slurp(gold, predictions)["intent_acc"] == 1.0


# --- errors name file and line -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", r"p\.jsonl:2: not valid JSON"),
        ('{"file": "b.flac", "scenario": "s", "action": "a"}', r"p\.jsonl:2: missing key\(s\) \['entities'\]"),
        ('{"file": "b.flac", "scenario": "s", "action": "a", "entities": [{"type": "t"}]}', r"p\.jsonl:2: .*'filler'"),
        ('{"file": "b.flac", "scenario": 3, "action": "a", "entities": []}', r"p\.jsonl:2: scenario must be a string"),
        (
            '{"file": "b.flac", "scenario": "s", "action": "a", "entities": [{"type": "t", "filler": "f", "x": 1}]}',
            r"p\.jsonl:2: entities\[0\] must have exactly",
        ),
        ('{"file": "a.flac", "scenario": "s", "action": "a", "entities": []}', r"p\.jsonl:2: a second prediction"),
        ("[]", r"p\.jsonl:2: expected a JSON object"),
    ],
)
def test_bad_prediction_lines_are_named(tmp_path, line, message):
    path = tmp_path / "p.jsonl"
    path.write_text('{"file": "a.flac", "scenario": "s", "action": "a", "entities": []}\n' + line + "\n")
    with pytest.raises(SlurpFormatError, match=message):
        load_predictions(path)


def test_bad_gold_lines_are_named(tmp_path):
    lines = (FIXTURES / "small_gold.jsonl").read_text().splitlines()
    broken = json.loads(lines[1])
    broken["entities"][0]["span"] = [99]
    path = tmp_path / "g.jsonl"
    path.write_text("\n".join([lines[0], json.dumps(broken)]) + "\n")
    with pytest.raises(SlurpFormatError, match=r"g\.jsonl:2: entities\[0\] has span \[99\]"):
        load_gold(path)
    path.write_text("\n".join([lines[0], lines[0]]) + "\n")
    with pytest.raises(SlurpFormatError, match=r"g\.jsonl:2: recording 'audio-1-headset\.flac' also appears on line 1"):
        load_gold(path)
    del broken["recordings"]
    path.write_text(json.dumps(broken) + "\n")
    with pytest.raises(SlurpFormatError, match=r"g\.jsonl:1: missing key\(s\) \['recordings'\]"):
        load_gold(path)


# --- real SLURP annotation files -----------------------------------------------------------------


@pytest.mark.parametrize(("split", "recordings", "quirks"), [("devel", 8690, 30), ("test", 13078, 37)])
def test_real_gold_is_one_item_per_recording(split, recordings, quirks):
    path = shared_file(f"{split}.jsonl")
    gold = load_gold(path)
    assert len(gold) == recordings
    sentences = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    odd = [s for s in sentences if s["intent"] != f"{s['scenario']}_{s['action']}"]
    assert len(odd) == quirks  # gold's intent field is not what the evaluator compares
    for sentence in odd:
        for recording in sentence["recordings"]:
            assert gold[recording["file"]].intent == f"{sentence['scenario']}_{sentence['action']}"
    assert all(s.filler == s.filler.lower() for item in gold.values() for s in item.entities)
    scores = score_slurp(gold, gold)
    assert scores["slu_f1"] == scores["intent_acc"] == scores["coverage"] == 1.0


def test_official_parity_on_perturbed_devel(tmp_path):
    gold = load_gold(shared_file("devel.jsonl"))
    hyp = tmp_path / "devel_perturbed.jsonl"
    hyp.write_bytes(gzip.decompress((FIXTURES / "devel_perturbed.jsonl.gz").read_bytes()))
    predictions = load_predictions(hyp)
    scores = score_slurp(gold, predictions)
    assert (scores["coverage"], scores["n_scored"]) == (1.0, 8690)
    assert_matches_official(scores, gold, predictions, FIXTURES / "official_devel_perturbed.txt")


def test_official_parity_on_partial_perturbed_devel(tmp_path):
    gold = load_gold(shared_file("devel.jsonl"))
    lines = gzip.decompress((FIXTURES / "devel_perturbed.jsonl.gz").read_bytes()).decode().splitlines(keepends=True)
    hyp = tmp_path / "devel_perturbed_partial.jsonl"
    hyp.write_text("".join(line for n, line in enumerate(lines, start=1) if n % 7), encoding="utf-8")
    with pytest.raises(ValueError, match="cover 7449 of 8690 gold recordings; 1241 have no prediction"):
        score_files(shared_file("devel.jsonl"), hyp)
    predictions = load_predictions(hyp)
    scores = score_slurp(gold, predictions, allow_partial=True)
    assert scores["coverage"] == pytest.approx(7449 / 8690)
    assert_matches_official(scores, gold, predictions, FIXTURES / "official_devel_perturbed_partial.txt")


def test_fixture_generator_reproduces_the_committed_predictions(tmp_path):
    gold = shared_file("devel.jsonl")
    spec = importlib.util.spec_from_file_location("make_perturbed", FIXTURES / "make_perturbed_predictions.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = "".join(json.dumps(p) + "\n" for p in module.build(gold))
    assert text.encode() == gzip.decompress((FIXTURES / "devel_perturbed.jsonl.gz").read_bytes())
