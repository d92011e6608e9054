"""Records -> cells: the stated rule for several runs, convention refusals, boards kept apart."""

import json
import shutil
import statistics
from pathlib import Path

import pytest

from nestbench.leaderboard import RefusedResultsError, build_leaderboards, load_tables, place, read_results
from nestbench.leaderboard.aggregate import Run, reference_for

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "leaderboard"


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> Path:
    """The fixture stores, copied: reading a store takes its lock, which creates a file beside it."""
    folder = tmp_path_factory.mktemp("stores")
    for name in ("accepted.jsonl", "refused.jsonl"):
        shutil.copy(FIXTURES / name, folder / name)
    return folder


@pytest.fixture(scope="module")
def placement(stores):
    return place(read_results(stores / "accepted.jsonl"), load_tables())


def _row(placement, board, table, spec):
    return next(r for r in placement.rows[(board, table)] if r.spec == spec)


def test_two_seeds_give_mean_and_sample_std_with_best_dev_run_per_seed(placement):
    row = _row(placement, "full", "slurp", "experiments/slurp.gin")
    cell = row.cells["intent_acc"]
    # seed 2 ran twice: the run with the better dev score (test 0.89) represents it, not the better test (0.95)
    assert cell.rule == "mean-std" and cell.seeds == (1, 2)
    assert cell.value == pytest.approx(statistics.fmean([88.5, 89.0]))
    assert cell.std == pytest.approx(statistics.stdev([88.5, 89.0]))
    assert [r.record["run_id"] for r in cell.used] == ["20261201-090000", "20261202-090000"]
    assert len(row.runs) == 3 and len(row.used) == 2


def test_one_seed_takes_the_best_dev_run_not_the_best_test_run(placement):
    row = _row(placement, "full", "slurp", "experiments/slurp_frozen.gin")  # absolute spec path in the record
    cell = row.cells["intent_acc"]
    assert cell.rule == "best-dev" and cell.std is None
    assert cell.value == pytest.approx(71.0)  # dev 0.700 beats dev 0.690 (whose test is 75.0)
    assert (row.mode, row.aggregation) == ("frozen", "superb")


def test_columns_fill_from_the_record_keys(placement):
    (row,) = placement.rows[("full", "asr_mcv")]
    assert set(row.cells) == {"de"}
    assert row.cells["de"].value == pytest.approx(8.5)


def test_quickstart_rows_stay_on_their_board(placement):
    full_runs = {
        r.label for rows in (v for k, v in placement.rows.items() if k[0] == "full") for row in rows for r in row.runs
    }
    quick_runs = {r.label for row in placement.rows[("quickstart", "slurp")] for r in row.runs}
    assert not any(label.startswith("quickstart_slurp/") for label in full_runs)
    assert quick_runs == {"quickstart_slurp/20261207-090000", "quickstart_slurp/20261208-090000"}


def test_delta_reference_is_the_same_checkpoint_else_the_only_card_row(placement):
    tables = {t.id: t for t in load_tables()}
    slurp_row = _row(placement, "full", "slurp", "experiments/slurp.gin")
    assert reference_for(tables["slurp"], slurp_row).checkpoint == "nvidia/ssl_en_nest_large_v1.0"
    (asr_row,) = placement.rows[("full", "asr_mcv")]
    assert reference_for(tables["asr_mcv"], asr_row).values["de"] == 8.07


def test_convention_mismatches_are_refused_naming_run_and_field(stores):
    result = place(read_results(stores / "refused.jsonl"), load_tables())
    assert not result.rows
    messages = sorted(str(r) for r in result.refusals)
    assert len(messages) == 3
    assert "run asr_mcv_en/20261209-090000 refused from table 'asr_mcv'" in messages[0]
    assert "convention.normalization is 'whisper_en', required: 'none'" in messages[0]
    assert "run slurp/20261210-090000 refused from table 'slurp'" in messages[1]
    assert "convention.eval_recordings is 'headset', required: 'all'" in messages[1]
    assert "run sortformer_callhome/20261211-090000" in messages[2]
    assert "column callhome_2spk: convention.collar_per_side is 0.5, required: 0.25" in messages[2]
    assert all(m.startswith(str(stores / "refused.jsonl")) for m in messages)


def test_strict_build_raises_listing_every_refusal_and_writes_nothing(stores, tmp_path):
    with pytest.raises(RefusedResultsError) as err:
        build_leaderboards(stores, tmp_path / "out")
    text = str(err.value)
    assert text.startswith("3 result(s) refused")
    for run in ("asr_mcv_en/20261209-090000", "slurp/20261210-090000", "sortformer_callhome/20261211-090000"):
        assert run in text
    assert not (tmp_path / "out").exists()


def _record(**changes) -> dict:
    rec = json.loads((FIXTURES / "accepted.jsonl").read_text().splitlines()[0])
    rec.update(changes)
    return rec


def test_missing_units_board_or_dev_metric_are_refused():
    no_units = _record(run_id="a", convention={k: v for k, v in _record()["convention"].items() if k != "units"})
    bad_board = _record(run_id="b", board="paper")
    no_dev = _record(run_id="c", metrics={"test": _record()["metrics"]["test"]})
    runs = [Run(r, Path("s.jsonl")) for r in (no_units, bad_board, no_dev)]
    reasons = {r.run: " ".join(r.reasons) for r in place(runs, load_tables()).refusals}
    assert "convention.units is not recorded" in reasons["slurp/a"]
    assert "board is 'paper'" in reasons["slurp/b"]
    assert "metrics.dev.intent_acc is not recorded" in reasons["slurp/c"]


def test_a_record_for_no_table_is_reported_not_refused():
    rec = _record(run_id="d", task="kws", convention={"dataset": "speech-commands"})
    result = place([Run(rec, Path("s.jsonl"))], load_tables())
    assert not result.refusals and not result.rows
    assert result.unplaced == ["s.jsonl: run slurp/d (task 'kws') matches no table"]


def test_a_record_of_the_tables_task_without_its_sets_is_reported_not_placed():
    rec = _record(run_id="d", task="asr", convention={"dataset": "librispeech", "normalization": "none"})
    result = place([Run(rec, Path("s.jsonl"))], load_tables())
    assert not result.refusals and not result.rows
    assert result.unplaced[0].startswith("s.jsonl: run slurp/d matches table 'asr_mcv' but none of its columns")


def test_the_same_record_in_two_stores_counts_once(stores, tmp_path):
    copy = tmp_path / "copy.jsonl"
    copy.write_text((FIXTURES / "accepted.jsonl").read_text())
    result = place(read_results([stores / "accepted.jsonl", copy]), load_tables())
    assert len(_row(result, "full", "slurp", "experiments/slurp.gin").runs) == 3


def _task_record(task: str, **changes) -> dict:
    lines = (FIXTURES / "accepted.jsonl").read_text().splitlines()
    rec = next(r for r in map(json.loads, lines) if r["task"] == task)
    rec.update(changes)
    return rec


def test_values_outside_their_units_are_refused_naming_run_and_value():
    good = _record()["metrics"]
    percent = _record(run_id="pct", metrics={**good, "test": {**good["test"], "intent_acc": 89.79}})
    nan = _record(run_id="nan", metrics={**good, "test": {**good["test"], "slu_f1": float("nan")}})
    dev = _record(run_id="dev", metrics={**good, "dev": {**good["dev"], "intent_acc": 88.1}})
    runs = [Run(r, Path("s.jsonl")) for r in (percent, nan, dev)]
    result = place(runs, load_tables())
    assert not result.rows
    reasons = {r.run: " ".join(r.reasons) for r in result.refusals}
    assert "metrics.test.intent_acc is 89.79, outside [0, 1] for convention.units 'fraction'" in reasons["slurp/pct"]
    assert "metrics.test.slu_f1 is nan, not a finite number" in reasons["slurp/nan"]
    assert "metrics.dev.intent_acc is 88.1, outside [0, 1]" in reasons["slurp/dev"]
    assert str(result.refusals[0]).startswith("s.jsonl: run slurp/")


def test_error_rates_may_pass_one_but_never_go_negative():
    bad = _task_record("asr", run_id="worse-than-silence", metrics={"dev": {"wer": 1.3}, "mcv_de": {"wer": 1.25}})
    negative = _task_record("asr", run_id="negative", metrics={"dev": {"wer": 0.1}, "mcv_de": {"wer": -0.1}})
    result = place([Run(bad, Path("s.jsonl")), Run(negative, Path("s.jsonl"))], load_tables())
    (row,) = result.rows[("full", "asr_mcv")]
    assert row.cells["de"].value == pytest.approx(125.0)  # insertions: a WER above 100% is a real WER
    (refusal,) = result.refusals
    assert "metrics.mcv_de.wer is -0.1, outside [0, inf]" in str(refusal)


def test_strict_build_refuses_a_value_outside_its_units_and_skip_refused_lists_it(tmp_path):
    good = _record()["metrics"]
    store = tmp_path / "results" / "store.jsonl"
    store.parent.mkdir()
    store.write_text(json.dumps(_record(run_id="pct", metrics={**good, "test": {**good["test"], "intent_acc": 89.79}})))
    with pytest.raises(RefusedResultsError, match=r"run slurp/pct .*metrics\.test\.intent_acc is 89\.79") as err:
        build_leaderboards(store, tmp_path / "out")
    assert "--skip-refused" in str(err.value) and not (tmp_path / "out").exists()
    build_leaderboards(store, tmp_path / "out", strict=False)
    card = (tmp_path / "out" / "nest_card.md").read_text()
    assert "`slurp/pct`" in card[card.index("## Refused results") :]
    assert "4502" not in card and "89.79 ±" not in card


def _sv_record(run_id: str, board: str, split: str, trial_list: str, **changes) -> dict:
    """A speaker-verification record: metrics and per-set info keyed by evaluation-set name."""
    test = {"eer": 0.05, "min_dcf_0.01": 0.31, "min_dcf_0.05": 0.22, "baseline_eer": 0.2}
    convention = {"units": "fraction", "eer_method": "interpolated ROC crossing", "score_norm": "none"}
    rec = _record(
        run_id=run_id,
        experiment="quickstart_sv" if board == "quickstart" else "sv_voxceleb",
        task="sv",
        board=board,
        convention=convention,
        metrics={"dev": {"eer": 0.06}, split: test},
        sets={split: {"manifest": f"{split}.jsonl", "trial_list": trial_list}},
    )
    rec.update(changes)
    return rec


def test_sv_quickstart_fills_the_quickstart_board_from_its_test_set():
    rec = _sv_record("q", "quickstart", "test", "sv-mini-test")
    result = place([Run(rec, Path("s.jsonl"))], load_tables())
    assert not result.refusals and not result.unplaced
    (row,) = result.rows[("quickstart", "speaker_verification")]
    values = {k: c.value for k, c in row.cells.items()}
    assert values == pytest.approx({"eer": 5.0, "min_dcf_p0.01": 0.31, "min_dcf_p0.05": 0.22, "baseline_eer": 20.0})
    assert ("full", "speaker_verification") not in result.rows


def test_sv_full_record_fills_the_card_board_from_voxceleb1_o():
    rec = _sv_record("f", "full", "voxceleb1_o", "voxceleb1-o-cleaned")
    rec["metrics"]["voxceleb1_e"] = {"eer": 0.5, "min_dcf_0.01": 0.9, "min_dcf_0.05": 0.9, "baseline_eer": 0.5}
    result = place([Run(rec, Path("s.jsonl"))], load_tables())
    assert not result.refusals
    (row,) = result.rows[("full", "speaker_verification")]
    assert row.cells["eer"].value == pytest.approx(5.0)
    assert row.cells["min_dcf_p0.01"].value == pytest.approx(0.31)
    assert row.cells["baseline_eer"].value == pytest.approx(20.0)


def test_sv_full_record_on_another_trial_list_is_refused_naming_it():
    original = _sv_record("orig", "full", "voxceleb1_o", "voxceleb1-o")
    # a quickstart-shaped record sent to the full board: no voxceleb1_o set at all
    test_only = _sv_record("testonly", "full", "test", "sv-mini-test")
    normed = _sv_record("snorm", "full", "voxceleb1_o", "voxceleb1-o-cleaned")
    normed["convention"]["score_norm"] = "adaptive s-norm, top 300 cohort scores"
    runs = [Run(r, Path("s.jsonl")) for r in (original, test_only, normed)]
    result = place(runs, load_tables())
    assert not result.rows
    reasons = {r.run: " ".join(r.reasons) for r in result.refusals}
    wrong_list = "sets.voxceleb1_o.trial_list is 'voxceleb1-o', required: 'voxceleb1-o-cleaned'"
    assert wrong_list in reasons["sv_voxceleb/orig"]
    assert "sets.voxceleb1_o.trial_list is not recorded" in reasons["sv_voxceleb/testonly"]
    assert "metrics.voxceleb1_o.eer is not recorded" in reasons["sv_voxceleb/testonly"]
    assert (
        "convention.score_norm is 'adaptive s-norm, top 300 cohort scores', required: 'none'"
        in reasons["sv_voxceleb/snorm"]
    )
    assert "run sv_voxceleb/orig refused from table 'speaker_verification'" in str(
        next(r for r in result.refusals if r.run == "sv_voxceleb/orig")
    )


def test_sv_quickstart_on_another_trial_list_is_refused():
    rec = _sv_record("q2", "quickstart", "test", "voxceleb1-o-cleaned")
    (refusal,) = place([Run(rec, Path("s.jsonl"))], load_tables()).refusals
    assert refusal.board == "quickstart"
    assert "sets.test.trial_list is 'voxceleb1-o-cleaned', required: 'sv-mini-test'" in refusal.reasons


def test_evaluations_add_their_sets_to_the_run_they_evaluated():
    """`nestbench evaluate RUN --gin "Experiment.extra_tests = ..."` fills another column of the same row."""
    run = _sv_record("r1", "full", "voxceleb1_o", "voxceleb1-o-cleaned")
    evaluation = _sv_record("r1", "full", "voxceleb1_h", "voxceleb1-h-cleaned", evaluation_of="r1")
    evaluation["metrics"] = {"voxceleb1_h": {"eer": 0.09}, "voxceleb1_o": {"eer": 0.5}}
    orphan = _sv_record("r2", "full", "voxceleb1_o", "voxceleb1-o-cleaned", evaluation_of="r2")
    del orphan["metrics"]["dev"]
    runs = [Run(r, Path("s.jsonl")) for r in (run, evaluation, orphan)]
    result = place(runs, load_tables())
    (row,) = result.rows[("full", "speaker_verification")]
    (placed,) = row.runs
    assert placed.record["metrics"]["voxceleb1_h"] == {"eer": 0.09}  # the evaluation's new set
    assert placed.record["metrics"]["voxceleb1_o"]["eer"] == 0.05  # the run's own number is kept
    assert placed.record["sets"]["voxceleb1_h"]["trial_list"] == "voxceleb1-h-cleaned"
    assert [r.run for r in result.refusals] == ["sv_voxceleb/r2"]  # its run is in no store: no dev score


def test_one_diarization_run_fills_a_column_per_named_test_set():
    sets = {n: {"manifest": f"{n}.jsonl", "uem": "none"} for n in ("dev", "callhome_2spk", "callhome_3spk")}
    rec = _record(
        run_id="e",
        experiment="diar_callhome",
        spec="experiments/diar_callhome.gin",
        task="diar",
        convention={"collar_per_side": 0.25, "overlap_scored": True, "units": "fraction"},
        metrics={"dev": {"der": 0.12}, "callhome_2spk": {"der": 0.071}, "callhome_3spk": {"der": 0.104}},
        sets=sets,
    )
    result = place([Run(rec, Path("s.jsonl"))], load_tables())
    assert not result.refusals
    (row,) = result.rows[("full", "diarization")]
    assert set(row.cells) == {"callhome_2spk", "callhome_3spk"}  # no callhome_4spk or DIHARD set scored
    assert row.cells["callhome_2spk"].value == pytest.approx(7.1)
    # the same run at the card's other collar is refused per column, naming the set's column
    wrong = dict(rec, run_id="f", convention={**rec["convention"], "collar_per_side": 0.0})
    (refusal,) = place([Run(wrong, Path("s.jsonl"))], load_tables()).refusals
    assert any("column callhome_3spk: convention.collar_per_side is 0.0" in r for r in refusal.reasons)
