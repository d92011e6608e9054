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
    rec = _record(run_id="d", task="asr", convention={"dataset": "librispeech", "normalization": "none"})
    result = place([Run(rec, Path("s.jsonl"))], load_tables())
    assert not result.refusals and not result.rows
    assert result.unplaced == ["s.jsonl: run slurp/d (task 'asr') matches no table"]


def test_the_same_record_in_two_stores_counts_once(stores, tmp_path):
    copy = tmp_path / "copy.jsonl"
    copy.write_text((FIXTURES / "accepted.jsonl").read_text())
    result = place(read_results([stores / "accepted.jsonl", copy]), load_tables())
    assert len(_row(result, "full", "slurp", "experiments/slurp.gin").runs) == 3
