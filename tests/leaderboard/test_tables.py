"""The card tables as data: exact reference numbers, complete metadata, strict validation."""

import re
from pathlib import Path

import pytest

from nestbench.leaderboard.tables import Requirement, TableSpecError, load_table, load_tables

CARD = {
    "asr_mcv": [{"en": 14.43, "de": 8.07, "es": 8.70, "fr": 16.18}],
    "ast_fleurs": [{"en-de": 29.50, "en-es": 22.61, "en-fr": 39.27}],
    "diarization": [{"dihard3": 14.60, "callhome_2spk": 6.08, "callhome_3spk": 9.57, "callhome_4spk": 15.40}],
    "slurp": [{"intent_acc": 89.79, "slu_f1": 79.61}, {"intent_acc": 89.04, "slu_f1": 80.31}],
    "speaker_verification": [],
}


def test_reference_numbers_are_the_cards():
    tables = {t.id: t for t in load_tables()}
    assert set(tables) == set(CARD)
    for table_id, rows in CARD.items():
        assert [r.values for r in tables[table_id].rows] == rows, table_id


def test_reference_rows_name_their_models():
    tables = {t.id: t for t in load_tables()}
    assert [r.checkpoint for r in tables["slurp"].rows] == [
        "nvidia/ssl_en_nest_large_v1.0",
        "nvidia/ssl_en_nest_xlarge_v1.0",
    ]
    assert tables["asr_mcv"].rows[0].checkpoint == "nvidia/ssl_en_nest_xlarge_v1.0"
    assert tables["ast_fleurs"].rows[0].checkpoint == "nvidia/ssl_en_nest_xlarge_v1.0"


def test_every_table_states_source_metric_unit_direction_convention():
    for t in load_tables():
        assert t.metric and t.convention and t.dataset
        assert t.split == ("voxceleb1_o" if t.id == "speaker_verification" else "test")
        assert t.on("quickstart").split == "test"
        assert all(c.direction in ("max", "min") and c.scale for c in t.columns)
        if t.rows:
            assert t.sources and all(
                url.startswith("https://huggingface.co/nvidia/ssl_en_nest_") for _, url in t.sources
            )


def test_conventions_are_checkable():
    tables = {t.id: t for t in load_tables()}
    asr = {r.path: r for r in tables["asr_mcv"].requires}
    assert asr["convention.normalization"].value == "none"
    slurp = {r.path: r for r in tables["slurp"].requires}
    assert slurp["convention.eval_recordings"].value == "all"
    collars = {c.id: {r.path: r.value for r in c.requires} for c in tables["diarization"].columns}
    assert collars["dihard3"]["convention.collar_per_side"] == 0.0
    assert {collars[f"callhome_{n}spk"]["convention.collar_per_side"] for n in (2, 3, 4)} == {0.25}


def test_requirement_semantics():
    rec = {"convention": {"overlap_scored": True, "uem": None, "collar_per_side": 0}}
    assert Requirement("convention.overlap_scored", "equals", True).matches(rec)
    assert not Requirement("convention.collar_per_side", "equals", False).matches(rec)  # 0 is not False
    assert Requirement("convention.collar_per_side", "equals", 0.0).matches(rec)
    assert Requirement("convention.uem", "present", True).matches(rec)
    why = Requirement("convention.language", "one_of", ("en", "de")).check(rec)
    assert why == "convention.language is not recorded (required: one of ['en', 'de'])"


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


BASE = """id: {id}
title: T
dataset: D
split: test
metric: m
unit: "%"
direction: {direction}
scale: {{fraction: 100}}
convention: c
columns: [{{id: a, label: A, metric: a}}]
rows: [{{checkpoint: x, system: s, mode: finetune, values: {values}}}]
"""


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"id": "other"}, "must equal the file name"),
        ({"direction": "up"}, "direction: 'up' is not one of"),
        ({"values": "{b: 1.0}"}, "unknown columns ['b']"),
        ({"values": "{a: high}"}, "values.a: 'high' is not a number"),
    ],
)
def test_malformed_tables_are_refused_naming_file_and_field(tmp_path, fields, message):
    spec = {"id": "t", "direction": "max", "values": "{a: 1.0}", **fields}
    path = _write(tmp_path, "t", BASE.format(**spec))
    with pytest.raises(TableSpecError, match=re.escape(message)) as err:
        load_table(path)
    assert str(path) in str(err.value)


def test_bounds_default_by_units_and_every_scaled_unit_needs_them(tmp_path):
    base = BASE.format(id="t", direction="min", values="{a: 1.0}")
    table = load_table(_write(tmp_path, "t", base))
    assert table.columns[0].bounds["fraction"] == (0.0, 1.0)
    wide = load_table(_write(tmp_path, "t", base + "bounds: {fraction: [0, null]}\n"))
    assert wide.columns[0].bounds["fraction"] == (0.0, float("inf"))
    odd = _write(tmp_path, "t", base.replace("scale: {fraction: 100}", "scale: {permille: 0.1}"))
    with pytest.raises(TableSpecError, match=r"units \['permille'\] have no bounds"):
        load_table(odd)
    with pytest.raises(TableSpecError, match=r"bounds\.fraction: expected \[low, high\]"):
        load_table(_write(tmp_path, "t", base + "bounds: {fraction: 1}\n"))


def test_sv_table_reads_voxceleb1_o_on_the_card_board_and_test_on_the_quickstart_board():
    sv = {t.id: t for t in load_tables()}["speaker_verification"]
    assert (sv.on("full").split, sv.on("quickstart").split) == ("voxceleb1_o", "test")
    full = {r.path: r.value for r in sv.on("full").requires}
    quick = {r.path: r.value for r in sv.on("quickstart").requires}
    assert full["sets.voxceleb1_o.trial_list"] == "voxceleb1-o-cleaned" and "sets.test.trial_list" not in full
    assert quick["sets.test.trial_list"] == "sv-mini-test" and "sets.voxceleb1_o.trial_list" not in quick
    assert full["convention.score_norm"] == quick["convention.score_norm"] == "none"
    assert [c.metric for c in sv.columns] == ["eer", "min_dcf_0.01", "min_dcf_0.05", "baseline_eer"]


def test_board_overrides_replace_split_and_requires_only_for_their_board(tmp_path):
    base = BASE.format(id="t", direction="min", values="{a: 1.0}")
    text = base + "requires: {x: 1}\nboards: {quickstart: {split: mini, requires: {y: 2}}, full: {split: big}}\n"
    table = load_table(_write(tmp_path, "t", text))
    assert (table.on("full").split, table.on("quickstart").split) == ("big", "mini")
    assert [r.path for r in table.on("full").requires] == ["x"]  # no requires in the override: the table's
    assert [r.path for r in table.on("quickstart").requires] == ["y"]
    assert table.on("quickstart").columns == table.columns  # no columns in the override: the table's
    plain = load_table(_write(tmp_path, "t", base + "requires: {x: 1}\n"))
    assert plain.on("quickstart").split == "test" and [r.path for r in plain.on("quickstart").requires] == ["x"]


def test_a_board_may_show_its_own_columns():
    diar = next(t for t in load_tables() if t.id == "diarization")
    quick = diar.on("quickstart")
    metrics = [c.metric for c in quick.columns]
    assert metrics == ["der", "missed", "false_alarm", "confusion", "baseline_der_one_speaker"]
    assert all(c.split is None for c in quick.columns) and quick.split == "test"
    assert [c.split for c in diar.on("full").columns] == [
        "dihard3_eval_le4spk",
        "callhome_2spk",
        "callhome_3spk",
        "callhome_4spk",
    ]


@pytest.mark.parametrize(
    ("boards", "message"),
    [
        ("{paper: {split: test}}", "boards.paper: unknown board"),
        ("{quickstart: {split: test, match: {a: 1}}}", "boards.quickstart: unknown keys ['match']"),
        ("{quickstart: test}", "boards.quickstart: expected a mapping"),
        ("{quickstart: {split: ''}}", "boards.quickstart: split: expected a non-empty string"),
        ("{quickstart: {requires: {a: {above: 1}}}}", "boards.quickstart: requires.a: use a value"),
        ("[quickstart]", "boards: expected a mapping"),
    ],
)
def test_malformed_board_overrides_are_refused(tmp_path, boards, message):
    path = _write(tmp_path, "t", BASE.format(id="t", direction="min", values="{a: 1.0}") + f"boards: {boards}\n")
    with pytest.raises(TableSpecError, match=re.escape(message)) as err:
        load_table(path)
    assert str(path) in str(err.value)
