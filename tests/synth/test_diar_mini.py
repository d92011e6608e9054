"""nestbench.synth.diar_mini: synthetic conversations whose reference RTTMs match the audio, with disjoint
speakers per split, overlap near its target, and the build/reuse/refuse conventions of the other corpora."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("espeakng_loader", reason="pip install espeakng-loader")

from nestbench.manifest import read_manifest  # noqa: E402
from nestbench.synth import diar_mini  # noqa: E402
from nestbench.synth.diar_mini import (  # noqa: E402
    MARKER,
    SPLITS,
    DiarMiniConfig,
    DiarMiniCorpus,
    config_hash,
    layout_session,
    make_diar_mini,
    plan_diar_mini,
    speech_and_overlap,
)

TINY = DiarMiniConfig(
    n_train_sessions=2, n_dev_sessions=1, n_test_sessions=1, n_train_speakers=5, n_dev_speakers=4,
    n_test_speakers=4, min_session_s=20.0, max_session_s=30.0, turn_s=(1.0, 5.0), snr_db_range=(15.0, 25.0),
    seed=3,
)  # fmt: skip
# noise far below 16-bit resolution: every sample outside the reference turns is exactly zero
QUIET = replace(TINY, n_train_sessions=1, snr_db_range=(150.0, 150.0))
KEYS = ["audio_filepath", "duration", "id", "rttm_filepath", "num_speakers", "speakers"]
RTTM = re.compile(r"SPEAKER (\S+) 1 (\d+\.\d{3}) (\d+\.\d{3}) <NA> <NA> (spk\d{3}) <NA> <NA>")


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def read_rttm(path: Path) -> dict[str, list[tuple[float, float, str]]]:
    """uri -> (start, end, speaker) turns; every line must be a 10-field RTTM line with 3 decimals."""
    turns = defaultdict(list)
    for line in path.read_text().splitlines():
        match = RTTM.fullmatch(line)
        assert match, line
        uri, start, dur, speaker = match.groups()
        turns[uri].append((float(start), float(start) + float(dur), speaker))
    return dict(turns)


def frame_mask(turns: list[tuple[float, float, str]], n_frames: int, shrink: int = 0) -> np.ndarray:
    """10 ms frames covered by a turn, each turn first shrunk by ``shrink`` frames at both ends."""
    mask = np.zeros(n_frames, bool)
    for start, end, _ in turns:
        mask[int(np.ceil(start * 100)) + shrink : int(end * 100) - shrink] = True
    return mask


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> DiarMiniCorpus:
    return make_diar_mini(tmp_path_factory.mktemp("diar") / "diar_mini", TINY, progress=False)


@pytest.fixture(scope="module")
def quiet(tmp_path_factory: pytest.TempPathFactory) -> DiarMiniCorpus:
    return make_diar_mini(tmp_path_factory.mktemp("diar") / "quiet", QUIET, progress=False)


def test_layout_manifests_and_rttm(corpus: DiarMiniCorpus) -> None:
    root = corpus.root
    assert (root / MARKER).is_file() and not (root / ".in_progress").exists()
    listed = set()
    for split in SPLITS:
        lines = read_lines(corpus.manifest(split))
        assert [line["id"] for line in lines] == [f"{split}_{i:03d}" for i in range(TINY.n_sessions(split))]
        rttm = read_rttm(corpus.rttm(split))
        assert sorted(rttm) == [line["id"] for line in lines]
        uem = corpus.uem(split).read_text().splitlines()
        for line, uem_line in zip(lines, uem, strict=True):
            uri = line["id"]
            assert list(line) == KEYS
            assert line["audio_filepath"] == f"audio/{split}/{uri}.wav"
            assert line["rttm_filepath"] == f"rttm/{split}/{uri}.rttm"
            info = sf.info(str(root / line["audio_filepath"]))
            assert (info.format, info.subtype, info.samplerate, info.channels) == ("WAV", "PCM_16", 16000, 1)
            assert line["duration"] == pytest.approx(info.frames / 16000, abs=1e-3)
            assert TINY.min_session_s <= line["duration"] <= TINY.max_session_s
            assert uem_line == f"{uri} 1 0.000 {line['duration']:.3f}"
            # the session's own RTTM holds exactly its lines of the split's RTTM (NeMo reads it whole)
            assert read_rttm(root / line["rttm_filepath"]) == {uri: rttm[uri]}
            assert sorted({speaker for _, _, speaker in rttm[uri]}) == line["speakers"]
            assert line["num_speakers"] == len(line["speakers"])
            assert all(0.0 < start < end <= line["duration"] for start, end, _ in rttm[uri])
            listed.add(root / line["audio_filepath"])
        entries = read_manifest(corpus.manifest(split))  # relative paths resolve against the manifest folder
        assert [e.audio_filepath for e in entries] == [root / line["audio_filepath"] for line in lines]
    assert set((root / "audio").glob("*/*")) == listed
    with pytest.raises(ValueError, match="unknown split"):
        corpus.manifest("devel")


def test_speakers_per_session_and_disjoint_splits(corpus: DiarMiniCorpus) -> None:
    speakers = {}
    for split in SPLITS:
        lines = read_lines(corpus.manifest(split))
        assert all(2 <= line["num_speakers"] <= 4 for line in lines)
        speakers[split] = {s for line in lines for s in line["speakers"]}
    for a, b in (("train", "dev"), ("train", "test"), ("dev", "test")):
        assert not speakers[a] & speakers[b]
    meta = json.loads(corpus.meta.read_text())
    assert meta["config_hash"] == config_hash(TINY) and meta["config"]["seed"] == 3
    pool = {record["speaker"]: record["split"] for record in meta["speakers"]}
    assert len(pool) == 13 and len({record["variant"] for record in meta["speakers"]}) == 13
    for split in SPLITS:
        assert {pool[s] for s in speakers[split]} == {split}
        stats = meta["splits"][split]
        assert stats["sessions"] == TINY.n_sessions(split) and stats["speakers"] == len(speakers[split])


def test_meta_statistics_agree_with_the_rttm(corpus: DiarMiniCorpus) -> None:
    meta = json.loads(corpus.meta.read_text())["splits"]
    for split in SPLITS:
        grid = defaultdict(lambda: np.zeros(16000 * 31, np.int8))  # speakers active per sample, per session
        for uri, turns in read_rttm(corpus.rttm(split)).items():
            for start, end, _ in turns:
                grid[uri][round(start * 16000) : round(end * 16000)] += 1
        speech = sum(int((g >= 1).sum()) for g in grid.values()) / 16000
        overlap = sum(int((g >= 2).sum()) for g in grid.values()) / 16000
        assert max(int(g.max()) for g in grid.values()) == 2  # backchannels and overlaps, never three at once
        assert meta[split]["speech_s"] == pytest.approx(speech, abs=0.05)
        assert meta[split]["overlap_fraction"] == pytest.approx(overlap / speech, abs=0.005)
        assert 0.03 < meta[split]["overlap_fraction"] < 0.3  # sessions of 20-30 s follow the target loosely


def test_reference_turns_match_the_audio(corpus: DiarMiniCorpus, quiet: DiarMiniCorpus) -> None:
    # with noise: labelled frames carry speech, unlabelled ones only the stationary noise
    for split in SPLITS:
        for uri, turns in read_rttm(corpus.rttm(split)).items():
            audio, _ = sf.read(str(corpus.root / "audio" / split / f"{uri}.wav"), dtype="float32")
            energy = np.square(audio[: audio.size // 160 * 160].reshape(-1, 160)).mean(axis=1)
            inside, outside = frame_mask(turns, energy.size, shrink=1), ~frame_mask(turns, energy.size)
            assert inside.sum() > 1000 and outside.sum() > 50
            assert energy[inside].mean() > 10 * energy[outside].mean()
            assert np.percentile(energy[outside], 99) < np.median(energy[inside])
            for start, end, _ in turns:
                assert energy[int(start * 100) : int(end * 100)].mean() > 5 * energy[outside].mean()
    # without noise: silence exactly where no turn is, and every turn starts and ends with sound
    for split in SPLITS:
        for uri, turns in read_rttm(quiet.rttm(split)).items():
            audio, _ = sf.read(str(quiet.root / "audio" / split / f"{uri}.wav"), dtype="int16")
            covered = np.zeros(audio.size, bool)
            for start, end, _ in turns:
                a, b = round(start * 16000), round(end * 16000)
                covered[a:b] = True
                assert np.abs(audio[a : a + 160]).max() > 1 and np.abs(audio[b - 160 : b]).max() > 1
            loud = np.abs(audio) > 1  # libsndfile writes tiny negative floats as -1
            assert np.count_nonzero(loud[~covered]) < 0.001 * audio.size  # RTTM rounds turns to 1 ms
            assert np.count_nonzero(loud[covered]) > 0.5 * covered.sum()


def test_overlap_follows_the_target_on_a_planned_corpus() -> None:
    """Default-sized plan, laid out with the planner's length guesses (no audio)."""
    config = DiarMiniConfig(seed=5)
    plan = plan_diar_mini(config)
    for split in SPLITS:
        speech = overlap = 0
        for session in plan.sessions[split]:
            segments, n = layout_session(session, lambda u: int(u.est_s * config.sample_rate), config)
            s, o = speech_and_overlap(segments)
            speech, overlap = speech + s, overlap + o
            assert abs(o / s - session.overlap_target) < 0.03
            assert config.min_session_s * 16000 <= n <= config.max_session_s * 16000
            assert {g.utterance.speaker for g in segments} == set(session.speakers)
            by_speaker = defaultdict(list)
            for g in segments:
                assert g.start > 0 and g.start + g.length <= n
                by_speaker[g.utterance.speaker].append((g.start, g.start + g.length))
            for spans in by_speaker.values():  # no speaker ever overlaps itself
                spans.sort()
                assert all(a_end <= b_start for (_, a_end), (b_start, _) in zip(spans, spans[1:], strict=False))
            assert any(g.utterance.id.endswith("b") for g in segments)  # backchannels
        assert config.overlap_range[0] <= overlap / speech <= config.overlap_range[1]
    counts = [len(s.speakers) for s in plan.sessions["test"]]
    assert sorted(counts) == [2] * 4 + [3] * 4 + [4] * 4  # speaker counts balanced per split
    train = {spk for s in plan.sessions["train"] for spk in s.speakers}
    assert train == {s.speaker for s in plan.speakers if s.split == "train"}  # the whole pool takes part


def test_same_config_same_plan() -> None:
    assert plan_diar_mini(TINY) == plan_diar_mini(TINY)
    assert config_hash(TINY) == config_hash(replace(TINY))
    other = replace(TINY, seed=4)
    assert config_hash(other) != config_hash(TINY)
    texts = [t.utterance.text for t in plan_diar_mini(TINY).sessions["train"][0].turns]
    assert texts != [t.utterance.text for t in plan_diar_mini(other).sessions["train"][0].turns]


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="n_train_sessions"):
        replace(TINY, n_dev_sessions=0)
    with pytest.raises(ValueError, match="min_speakers"):
        replace(TINY, min_speakers=1)
    with pytest.raises(ValueError, match="min_speakers"):
        replace(TINY, min_speakers=4, max_speakers=3)
    with pytest.raises(ValueError, match="speaker pool"):
        replace(TINY, n_dev_speakers=3)
    with pytest.raises(ValueError, match="min_session_s"):
        replace(TINY, min_session_s=40.0)
    with pytest.raises(ValueError, match="overlap_range"):
        replace(TINY, overlap_range=(0.2, 0.1))
    with pytest.raises(ValueError, match="turn_s"):
        replace(TINY, turn_s=(1.0, 12.0))  # longer than half the shortest session
    with pytest.raises(ValueError, match="pause_s"):
        replace(TINY, pause_s=(0.0, 1.0))
    with pytest.raises(ValueError, match="backchannel_probability"):
        replace(TINY, backchannel_probability=1.5)
    with pytest.raises(ValueError, match="seed"):
        replace(TINY, seed=-1)
    DiarMiniConfig()  # the defaults are valid


def test_finished_corpus_is_reused(corpus: DiarMiniCorpus, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_synthesis(*args, **kwargs):
        raise AssertionError("a finished corpus must not be synthesised again")

    monkeypatch.setattr(diar_mini, "synthesize", no_synthesis)
    before = {p: p.stat().st_mtime_ns for p in corpus.root.rglob("*")}
    assert make_diar_mini(corpus.root, TINY, progress=False) == corpus
    assert {p: p.stat().st_mtime_ns for p in corpus.root.rglob("*")} == before


def test_interrupted_build_is_rebuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls, real = 0, diar_mini.synthesize

    def dies_after_five(*args, **kwargs):
        nonlocal calls
        calls += 1
        if calls > 5:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    out = tmp_path / "c"
    with monkeypatch.context() as m:
        m.setattr(diar_mini, "synthesize", dies_after_five)
        with pytest.raises(KeyboardInterrupt):
            make_diar_mini(out, QUIET, progress=False)
    assert (out / ".in_progress").is_file() and not (out / MARKER).exists()
    corpus = make_diar_mini(out, QUIET, progress=False)
    assert (out / MARKER).is_file() and not (out / ".in_progress").exists()
    assert len(list((out / "audio").glob("*/*.wav"))) == 3 and len(list((out / "rttm").glob("*/*.rttm"))) == 3
    assert json.loads(corpus.meta.read_text())["config_hash"] == config_hash(QUIET)


def test_refuses_a_folder_it_did_not_write(tmp_path: Path) -> None:
    (tmp_path / "train.rttm").write_text("SPEAKER x 1 0.000 1.000 <NA> <NA> a <NA> <NA>\n")
    with pytest.raises(FileExistsError, match="not written by make_diar_mini"):
        make_diar_mini(tmp_path, TINY, progress=False)
    assert (tmp_path / "train.rttm").read_text().startswith("SPEAKER x")
    assert not (tmp_path / "audio").exists()
