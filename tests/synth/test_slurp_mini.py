"""nestbench.synth.slurp_mini: a spoken mini corpus that real SLURP tooling cannot tell from the release."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("espeakng_loader", reason="pip install espeakng-loader")

from nestbench.synth import slurp_mini  # noqa: E402
from nestbench.synth.slurp_mini import (  # noqa: E402
    FILLERS,
    MARKER,
    SPEAKERS,
    SPLITS,
    TEMPLATES,
    MiniSlurpConfig,
    config_hash,
    make_mini_slurp,
    plan_mini_slurp,
    scenario_action,
    speaker_id,
)

REAL_DEVEL = Path(__file__).resolve().parents[3] / "shared" / "data" / "slurp" / "devel.jsonl"
# The release's key order, as in every line of the real devel.jsonl.
KEYS = [
    *("slurp_id", "sentence", "sentence_annotation", "intent", "action"),
    *("tokens", "scenario", "recordings", "entities"),
]
SMALL = MiniSlurpConfig(n_train=40, n_devel=10, n_test=10, seed=3)
TINY = MiniSlurpConfig(n_train=6, n_devel=3, n_test=3, seed=5)
SLOT = re.compile(r"\[(\w+) : ([^\]]+)\]")


def read_split(root: Path, split: str) -> list[dict]:
    return [json.loads(line) for line in (root / "dataset" / "slurp" / f"{split}.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_mini_slurp(tmp_path_factory.mktemp("mini") / "slurp", SMALL, progress=False)


@pytest.fixture(scope="module")
def lines(corpus: Path) -> dict[str, list[dict]]:
    return {split: read_split(corpus, split) for split in SPLITS}


def test_layout_and_audio_decode(corpus: Path, lines: dict[str, list[dict]]) -> None:
    assert [len(lines[s]) for s in SPLITS] == [40, 10, 10]
    files = [r["file"] for split in SPLITS for line in lines[split] for r in line["recordings"]]
    assert len(set(files)) == len(files) == 60
    assert sorted(p.name for p in (corpus / "audio" / "slurp_real").iterdir()) == sorted(files)
    for file in files:
        info = sf.info(str(corpus / "audio" / "slurp_real" / file))
        assert (info.format, info.samplerate, info.channels) == ("FLAC", 16000, 1)
        audio, _ = sf.read(str(corpus / "audio" / "slurp_real" / file), dtype="float32")
        assert np.isfinite(audio).all() and 0.4 < len(audio) / 16000 < 6.0
        assert float(np.sqrt(np.mean(audio**2))) > 0.02 and np.abs(audio).max() < 0.99  # speech, headroom


def test_lines_have_release_keys_and_types(lines: dict[str, list[dict]]) -> None:
    ids = [line["slurp_id"] for split in SPLITS for line in lines[split]]
    assert len(set(ids)) == len(ids)
    for line in (line for split in SPLITS for line in lines[split]):
        assert list(line) == KEYS
        assert isinstance(line["slurp_id"], int)
        assert all(isinstance(line[k], str) for k in ("sentence", "sentence_annotation", "intent", "action"))
        assert [list(t) for t in line["tokens"]] == [["surface", "id", "lemma", "pos"]] * len(line["tokens"])
        assert all(list(e) == ["span", "type"] for e in line["entities"])
        (recording,) = line["recordings"]
        assert list(recording) == ["file", "wer", "ent_wer", "status", "speaker"]
        assert re.fullmatch(r"audio-\d+-headset\.flac", recording["file"])
        assert recording["wer"] == 0.0 and recording["status"] == "correct"
        assert recording["ent_wer"] == (0.0 if line["entities"] else None)  # the release's null without entities


def test_keys_match_a_real_release_line(lines: dict[str, list[dict]]) -> None:
    if not REAL_DEVEL.is_file():
        pytest.skip(f"{REAL_DEVEL} not present (../shared is only beside the development checkout)")
    real = json.loads(REAL_DEVEL.read_text().splitlines()[0])
    ours = lines["test"][0]
    assert list(ours) == list(real) == KEYS
    assert set(ours["tokens"][0]) == set(real["tokens"][0])
    assert set(ours["entities"][0] if ours["entities"] else real["entities"][0]) == set(real["entities"][0])
    assert set(ours["recordings"][0]) - set(real["recordings"][0]) == {"speaker"}
    assert {type(v) for v in ours.values()} <= {type(v) for v in real.values()}


def test_sentence_annotation_tokens_and_spans_agree(lines: dict[str, list[dict]]) -> None:
    for line in (line for split in SPLITS for line in lines[split]):
        surfaces = [t["surface"] for t in line["tokens"]]
        assert surfaces == line["sentence"].split()
        assert [t["id"] for t in line["tokens"]] == list(range(len(surfaces)))
        assert all(t["lemma"] == t["surface"].lower() for t in line["tokens"])
        # the official scorer's gold filler (span surfaces joined) == the recipes' "[type : filler]" parse
        from_spans = [(e["type"], " ".join(surfaces[i] for i in e["span"])) for e in line["entities"]]
        assert SLOT.findall(line["sentence_annotation"]) == from_spans
        assert line["sentence_annotation"].count("[") == len(line["entities"])
        assert SLOT.sub(r"\2", line["sentence_annotation"]) == line["sentence"]
        starts = [e["span"][0] for e in line["entities"]]
        assert starts == sorted(starts)
        assert all(e["span"] == list(range(e["span"][0], e["span"][-1] + 1)) for e in line["entities"])
        assert line["intent"] == f"{line['scenario']}_{line['action']}"


def test_template_inventory() -> None:
    scenarios = {scenario_action(intent)[0] for intent in TEMPLATES}
    assert len(scenarios) >= 8 and len(TEMPLATES) >= 20
    assert {"alarm_set", "iot_hue_lightoff", "play_music", "weather_query"} <= set(TEMPLATES)
    assert scenario_action("iot_hue_lightoff") == ("iot", "hue_lightoff")
    for intent, templates in TEMPLATES.items():
        assert len(set(templates)) >= 4, intent
        for template in templates:
            assert set(re.findall(r"\{(\w+)\}", template)) <= set(FILLERS), template
            assert re.fullmatch(r"[a-z ]+", re.sub(r"\{\w+\}", "", template)), template  # no digits or clitics
    for slot_type, fillers in FILLERS.items():
        assert len(set(fillers)) == len(fillers) >= 8, slot_type
        assert all(re.fullmatch(r"[a-z]+( [a-z]+)*", f) for f in fillers), slot_type


def test_real_slurp_names(lines: dict[str, list[dict]]) -> None:
    if not REAL_DEVEL.is_file():
        pytest.skip(f"{REAL_DEVEL} not present (../shared is only beside the development checkout)")
    real = [json.loads(line) for line in REAL_DEVEL.read_text().splitlines()]
    assert set(TEMPLATES) <= {r["intent"] for r in real}
    assert set(FILLERS) <= {e["type"] for r in real for e in r["entities"]}


def test_speakers_disjoint_across_splits(lines: dict[str, list[dict]]) -> None:
    table = {split: {speaker_id(v) for v in SPEAKERS[split]} for split in SPLITS}
    variants = {split: {v.name for v in SPEAKERS[split]} for split in SPLITS}
    for a, b in (("train", "devel"), ("train", "test"), ("devel", "test")):
        assert not table[a] & table[b] and not variants[a] & variants[b]
    used = {split: {r["speaker"] for line in lines[split] for r in line["recordings"]} for split in SPLITS}
    assert all(used[split] <= table[split] for split in SPLITS)
    assert len(used["train"]) >= 10  # 40 lines spread over the 21 train speakers


def test_default_plan_is_balanced_and_holds_fillers_out_of_train() -> None:
    plan = plan_mini_slurp(MiniSlurpConfig())
    held_out = {(t, f) for t, fillers in FILLERS.items() for i, f in enumerate(fillers) if i % 4 == 3}
    for split in SPLITS:
        counts = Counter(line["intent"] for line, _ in plan[split])
        assert set(counts) == set(TEMPLATES) and max(counts.values()) - min(counts.values()) <= 1
        slots = {
            (e["type"], " ".join(line["tokens"][i]["surface"] for i in e["span"]))
            for line, _ in plan[split]
            for e in line["entities"]
        }
        if split == "train":
            assert not slots & held_out
        else:
            assert len(slots & held_out) >= 10


def test_same_seed_same_text_other_seed_differs(tmp_path: Path, corpus: Path) -> None:
    again = make_mini_slurp(tmp_path / "again", SMALL, progress=False)
    other = make_mini_slurp(tmp_path / "other", MiniSlurpConfig(40, 10, 10, seed=4), progress=False)
    for split in SPLITS:
        jsonl = Path("dataset", "slurp", f"{split}.jsonl")
        assert (again / jsonl).read_bytes() == (corpus / jsonl).read_bytes()
        assert (other / jsonl).read_bytes() != (corpus / jsonl).read_bytes()


def test_marker_makes_reruns_free_and_a_new_config_replaces_the_corpus(tmp_path: Path, monkeypatch) -> None:
    out = make_mini_slurp(tmp_path / "c", TINY, progress=False)
    marker = json.loads((out / MARKER).read_text())
    assert marker["config_hash"] == config_hash(TINY) and marker["counts"] == {"train": 6, "devel": 3, "test": 3}

    def no_synthesis(*args, **kwargs):
        raise AssertionError("a finished corpus must not be synthesised again")

    with monkeypatch.context() as m:
        m.setattr(slurp_mini, "synthesize", no_synthesis)
        assert make_mini_slurp(out, TINY, progress=False) == out

    smaller = MiniSlurpConfig(n_train=4, n_devel=2, n_test=2, seed=5)
    make_mini_slurp(out, smaller, progress=False)
    listed = {r["file"] for split in SPLITS for line in read_split(out, split) for r in line["recordings"]}
    assert {p.name for p in (out / "audio" / "slurp_real").iterdir()} == listed and len(listed) == 8
    assert json.loads((out / MARKER).read_text())["config_hash"] == config_hash(smaller)


def test_refuses_to_overwrite_a_foreign_corpus(tmp_path: Path) -> None:
    real = tmp_path / "slurp"
    (real / "dataset" / "slurp").mkdir(parents=True)
    (real / "dataset" / "slurp" / "test.jsonl").write_text("{}\n")
    with pytest.raises(FileExistsError, match="not written by make_mini_slurp"):
        make_mini_slurp(real, TINY, progress=False)
    assert (real / "dataset" / "slurp" / "test.jsonl").read_text() == "{}\n"


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="seed"):
        MiniSlurpConfig(seed=-1)
    with pytest.raises(ValueError, match="n_train"):
        MiniSlurpConfig(n_train=-1)
