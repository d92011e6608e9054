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
        assert t.metric and t.convention and t.dataset and t.split == "test"
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
