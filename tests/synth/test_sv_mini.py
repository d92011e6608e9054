"""nestbench.synth.sv_mini and the mean-log-mel cosine baseline: a speaker-verification corpus that builds
once, restarts cleanly, and whose manifests and trial lists follow NeMo's and VoxCeleb's conventions."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("espeakng_loader", reason="pip install espeakng-loader")

from nestbench.manifest import read_manifest  # noqa: E402
from nestbench.metrics.baselines import cosine_scores, mean_logmel_embeddings  # noqa: E402
from nestbench.synth import sv_mini  # noqa: E402
from nestbench.synth.sv_mini import (  # noqa: E402
    MARKER,
    SPLITS,
    VARIANTS,
    SvMiniConfig,
    SvMiniCorpus,
    config_hash,
    make_sv_mini,
    plan_sv_mini,
    read_trials,
)

TINY = SvMiniConfig(
    n_train_speakers=4, n_dev_speakers=2, n_test_speakers=3, utterances_per_speaker=3, n_dev_trials=8,
    n_test_trials=12, seed=7,
)  # fmt: skip
KEYS = ["audio_filepath", "duration", "id", "speaker", "text"]


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> SvMiniCorpus:
    return make_sv_mini(tmp_path_factory.mktemp("sv") / "sv_mini", TINY, progress=False)


@pytest.fixture(scope="module")
def lines(corpus: SvMiniCorpus) -> dict[str, list[dict]]:
    return {split: read_lines(corpus.manifest(split)) for split in SPLITS}


def test_layout_and_manifest_fields(corpus: SvMiniCorpus, lines: dict[str, list[dict]]) -> None:
    root = corpus.root
    assert corpus == SvMiniCorpus.at(root)
    for path in (corpus.dev_trials, corpus.test_trials, corpus.speakers, root / MARKER):
        assert path.is_file(), path
    assert not (root / ".in_progress").exists()
    assert [len(lines[s]) for s in SPLITS] == [12, 6, 9]
    listed = set()
    for split in SPLITS:
        for line in lines[split]:
            assert list(line) == KEYS
            assert line["audio_filepath"] == f"audio/{line['speaker']}/{line['id']}.flac"
            assert line["id"].startswith(line["speaker"] + "-") and line["text"].strip()
            info = sf.info(str(root / line["audio_filepath"]))
            assert (info.format, info.samplerate, info.channels) == ("FLAC", 16000, 1)
            assert line["duration"] == pytest.approx(info.frames / 16000, abs=1e-4)
            assert TINY.duration_range[0] <= line["duration"] <= TINY.duration_range[1]
            audio, _ = sf.read(str(root / line["audio_filepath"]), dtype="float32")
            assert np.isfinite(audio).all() and np.abs(audio).max() < 0.99  # headroom, no clipping
            assert 0.01 < float(np.sqrt(np.mean(audio**2))) < 0.2
            listed.add(root / line["audio_filepath"])
        entries = read_manifest(corpus.manifest(split))  # relative paths resolve against the manifest folder
        assert [e.utt_id for e in entries] == [line["id"] for line in lines[split]]
    assert set((root / "audio").glob("*/*")) == listed


def test_ids_unique_and_splits_hold_disjoint_speakers(corpus: SvMiniCorpus, lines: dict[str, list[dict]]) -> None:
    ids = [line["id"] for split in SPLITS for line in lines[split]]
    assert len(set(ids)) == len(ids) == 27
    texts = [line["text"] for split in SPLITS for line in lines[split]]
    assert len(set(texts)) == len(texts)
    speakers = {split: Counter(line["speaker"] for line in lines[split]) for split in SPLITS}
    assert [len(speakers[s]) for s in SPLITS] == [4, 2, 3]
    assert all(set(count.values()) == {3} for count in speakers.values())
    for a, b in (("train", "dev"), ("train", "test"), ("dev", "test")):
        assert not set(speakers[a]) & set(speakers[b])
    table = json.loads(corpus.speakers.read_text())
    assert table["config_hash"] == config_hash(TINY)
    records = {r["speaker"]: r for r in table["speakers"]}
    assert {s: r["split"] for s, r in records.items()} == {s: split for split in SPLITS for s in speakers[split]}
    identities = {(r["variant"], r["pitch"], r["rate"], r["warp"]) for r in records.values()}
    assert len(identities) == len(records)
    for r in records.values():
        assert r["variant"] in VARIANTS and 0.875 <= r["warp"] <= 1.125 and 1 <= len(r["bands"]) <= 2  # 100 Hz steps


def test_trials_are_balanced_within_split_and_unique(corpus: SvMiniCorpus, lines: dict[str, list[dict]]) -> None:
    for split, n in (("dev", 8), ("test", 12)):
        speaker_of = {line["id"]: line["speaker"] for line in lines[split]}
        trials = read_trials(corpus.trials(split))
        assert len(trials) == n and Counter(label for label, _, _ in trials) == {1: n // 2, 0: n // 2}
        pairs = [frozenset((a, b)) for _, a, b in trials]
        assert len(set(pairs)) == len(pairs)
        for label, enroll, test in trials:
            assert enroll != test and enroll in speaker_of and test in speaker_of
            assert label == int(speaker_of[enroll] == speaker_of[test])
        assert all(len(line.split()) == 3 for line in corpus.trials(split).read_text().splitlines())


def test_same_config_same_corpus(tmp_path: Path, corpus: SvMiniCorpus, lines: dict[str, list[dict]]) -> None:
    assert plan_sv_mini(TINY) == plan_sv_mini(TINY)
    again = make_sv_mini(tmp_path / "again", TINY, progress=False)
    for split in SPLITS:
        theirs = read_lines(again.manifest(split))
        assert [{**x, "duration": 0} for x in theirs] == [{**x, "duration": 0} for x in lines[split]]
        # espeak-ng's flutter state lets lengths drift by a few ms within one process (bit-exact when fresh)
        assert [x["duration"] for x in theirs] == pytest.approx([x["duration"] for x in lines[split]], abs=0.05)
    for name in ("dev_trials.txt", "test_trials.txt", "speakers.json"):
        assert (again.root / name).read_bytes() == (corpus.root / name).read_bytes()
    other = plan_sv_mini(replace(TINY, seed=8))
    assert [u.text for u in other.utterances["train"]] != [u.text for u in plan_sv_mini(TINY).utterances["train"]]


def test_complete_marker_short_circuits(corpus: SvMiniCorpus, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_synthesis(*args, **kwargs):
        raise AssertionError("a finished corpus must not be synthesised again")

    monkeypatch.setattr(sv_mini, "synthesize", no_synthesis)
    assert make_sv_mini(corpus.root, TINY, progress=False) == corpus
    assert json.loads((corpus.root / MARKER).read_text())["config_hash"] == config_hash(TINY)


def test_interrupted_build_is_rebuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = 0
    real = sv_mini.synthesize

    def dies_after_five(*args, **kwargs):
        nonlocal calls
        calls += 1
        if calls > 5:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    small = replace(TINY, n_train_speakers=2, n_dev_speakers=2, n_test_speakers=2, n_test_trials=8)
    with monkeypatch.context() as m:
        m.setattr(sv_mini, "synthesize", dies_after_five)
        with pytest.raises(KeyboardInterrupt):
            make_sv_mini(tmp_path / "c", small, progress=False)
    out = tmp_path / "c"
    assert (out / ".in_progress").is_file() and not (out / MARKER).exists()
    assert len(list((out / "audio").glob("*/*.flac"))) == 5
    corpus = make_sv_mini(out, small, progress=False)
    assert (out / MARKER).is_file() and not (out / ".in_progress").exists()
    listed = {out / line["audio_filepath"] for s in SPLITS for line in read_lines(corpus.manifest(s))}
    assert set((out / "audio").glob("*/*")) == listed and len(listed) == 18


def test_refuses_a_folder_it_did_not_write(tmp_path: Path) -> None:
    (tmp_path / "train.jsonl").write_text("{}\n")
    with pytest.raises(FileExistsError, match="not written by make_sv_mini"):
        make_sv_mini(tmp_path, TINY, progress=False)
    assert (tmp_path / "train.jsonl").read_text() == "{}\n"


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="seed"):
        SvMiniConfig(seed=-1)
    with pytest.raises(ValueError, match="n_dev_trials"):
        replace(TINY, n_dev_trials=7)  # odd: cannot be balanced
    with pytest.raises(ValueError, match="n_test_trials"):
        replace(TINY, n_test_trials=20)  # 3 speakers x 3 pairs = 9 target pairs < 10
    with pytest.raises(ValueError, match="n_train_speakers"):
        replace(TINY, n_train_speakers=1)
    SvMiniConfig()  # the defaults are valid


def test_mean_logmel_embeddings_and_cosine(corpus: SvMiniCorpus, lines: dict[str, list[dict]]) -> None:
    entries = [(line["id"], corpus.root / line["audio_filepath"]) for line in lines["test"]]
    embeddings = mean_logmel_embeddings(entries)
    assert list(embeddings) == [utt_id for utt_id, _ in entries]
    assert all(e.shape == (80,) and e.dtype == np.float32 and np.isfinite(e).all() for e in embeddings.values())
    assert mean_logmel_embeddings(entries[:1], n_mels=40)[entries[0][0]].shape == (40,)

    trials = [(a, b) for _, a, b in read_trials(corpus.test_trials)]
    scores = cosine_scores(embeddings, trials)
    assert scores.shape == (len(trials),) and scores.dtype == np.float64
    assert np.all(np.abs(scores) <= 1.0 + 1e-9)
    assert cosine_scores(embeddings, [(i, i) for i in embeddings]) == pytest.approx(np.ones(len(embeddings)))
    # mean-normalised: a constant offset on every embedding changes nothing
    shifted = {k: v + 5.0 for k, v in embeddings.items()}
    assert cosine_scores(shifted, trials) == pytest.approx(scores, abs=1e-6)  # float32 inputs
    with pytest.raises(ValueError, match="nope"):
        cosine_scores(embeddings, [(entries[0][0], "nope")])
    with pytest.raises(ValueError, match="duplicate"):
        mean_logmel_embeddings([entries[0], entries[0]])
