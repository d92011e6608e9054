"""The data layer: lhotse CutSets and NeMo manifests read alike (several supervisions kept), NeMo
manifests converted to cuts, ids unique by construction, segments read as their span, and data
fingerprints that do not depend on where the data sit."""

import json

import lhotse
import numpy as np
import pytest
import soundfile as sf
import torch

from nestbench.data import ExampleDataset, ManifestData, audio_span, data_fingerprint, read_entries
from nestbench.manifest import ManifestError, nemo_to_cuts, read_manifest
from nestbench.task import whole


def _cutset(tmp_path, n=3):
    cuts = []
    for i in range(n):
        wav = tmp_path / f"utt{i}.wav"
        sf.write(wav, (0.1 * np.random.default_rng(i).standard_normal(16000 + 800 * i)).astype(np.float32), 16000)
        rec = lhotse.Recording.from_file(wav)
        sup = lhotse.SupervisionSegment(
            id=f"utt{i}",
            recording_id=rec.id,
            start=0.0,
            duration=rec.duration,
            text="wake me up at five am",
            custom={"scenario": "alarm", "action": "set", "entities": [{"type": "time", "filler": "five am"}]},
        )
        cuts.append(
            lhotse.MonoCut(id=f"cut{i}", start=0.0, duration=rec.duration, channel=0, recording=rec, supervisions=[sup])
        )
    path = tmp_path / "cuts.jsonl.gz"
    lhotse.CutSet.from_cuts(cuts).to_file(path)
    return path


def test_lhotse_cuts_become_entries(tmp_path):
    path = _cutset(tmp_path)
    entries = read_entries(path)
    assert [e["id"] for e in entries] == ["cut0", "cut1", "cut2"]
    assert entries[1]["scenario"] == "alarm" and entries[1]["entities"][0]["filler"] == "five am"
    assert entries[2]["duration"] == pytest.approx(1.1)
    assert entries[0]["text"] == "wake me up at five am"
    assert len(data_fingerprint([path])) == 64


def test_missing_audio_in_lhotse_manifest(tmp_path):
    path = _cutset(tmp_path)
    (tmp_path / "utt1.wav").unlink()
    with pytest.raises(ManifestError, match="cut1"):
        read_manifest(path)


def test_manifest_data_source_reports_missing(tmp_path):
    path = _cutset(tmp_path)
    source = ManifestData(train=[str(path)], dev=str(path), test=str(tmp_path / "nope.jsonl"))
    assert source.missing() == [f"manifest {tmp_path / 'nope.jsonl'} does not exist"]
    assert source.prepare(tmp_path).train == (path,)


def _wav(path, seconds, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    audio = (0.1 * np.random.default_rng(seed).standard_normal(int(16000 * seconds))).astype(np.float32)
    sf.write(path, audio, 16000)
    return audio


def _nemo(path, lines):
    path.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    return path


def test_session_cut_keeps_every_speaker_turn(tmp_path):
    _wav(tmp_path / "meeting.wav", 6.0)
    rec = lhotse.Recording.from_file(tmp_path / "meeting.wav", recording_id="meeting")
    turns = [("A", 0.5, 2.0), ("B", 2.0, 1.5), ("A", 4.0, 1.0)]
    sups = [
        lhotse.SupervisionSegment(id=f"t{i}", recording_id="meeting", start=s, duration=d, speaker=spk)
        for i, (spk, s, d) in enumerate(turns)
    ]
    cut = lhotse.MonoCut(id="meeting", start=0.0, duration=6.0, channel=0, recording=rec, supervisions=sups)
    path = tmp_path / "sessions.jsonl.gz"
    lhotse.CutSet.from_cuts([cut]).to_file(path)
    (entry,) = read_entries(path)
    assert [(t["speaker"], t["start"], t["duration"]) for t in entry["supervisions"]] == turns


def test_nemo_manifest_converts_to_cuts(tmp_path):
    _wav(tmp_path / "a" / "00001.wav", 2.0)
    _wav(tmp_path / "b" / "00001.wav", 3.0, seed=1)
    manifest = _nemo(
        tmp_path / "m.jsonl",
        [
            {"audio_filepath": "a/00001.wav", "duration": 2.0, "text": "Hello, World.", "speaker": "s1"},
            {"audio_filepath": "b/00001.wav", "offset": 0.5, "duration": 1.0, "lang": "de", "intent": "x"},
        ],
    )
    cuts = nemo_to_cuts(manifest)
    assert [c.id for c in cuts] == ["a/00001", "b/00001@0.500-1.500"]
    first, second = list(cuts)
    assert first.supervisions[0].text == "Hello, World." and first.supervisions[0].speaker == "s1"
    assert second.start == 0.5 and second.duration == 1.0 and second.supervisions[0].language == "de"
    assert second.supervisions[0].custom == {"intent": "x"}
    assert second.load_audio().shape == (1, 16000)
    out = tmp_path / "cuts.jsonl.gz"
    cuts.to_file(out)
    assert [e["id"] for e in read_entries(out)] == ["a/00001", "b/00001@0.500-1.500"]


def test_files_with_one_name_in_two_folders_get_distinct_ids(tmp_path):
    """VoxCeleb has thousands of files called 00001.wav: the default id is the relative path."""
    for spk in ("id10001", "id10002"):
        _wav(tmp_path / "wav" / spk / "x" / "00001.wav", 1.0)
    manifest = _nemo(
        tmp_path / "m.jsonl",
        [{"audio_filepath": f"wav/{spk}/x/00001.wav"} for spk in ("id10001", "id10002")],
    )
    assert [e["id"] for e in read_entries(manifest)] == ["wav/id10001/x/00001", "wav/id10002/x/00001"]


def test_two_entries_with_one_id_are_an_error(tmp_path):
    _wav(tmp_path / "a.wav", 1.0)
    _wav(tmp_path / "b.wav", 1.0)
    manifest = _nemo(
        tmp_path / "m.jsonl", [{"audio_filepath": "a.wav", "id": "u1"}, {"audio_filepath": "b.wav", "id": "u1"}]
    )
    with pytest.raises(ManifestError, match=r"m.jsonl:2: id 'u1' is already used at line 1"):
        read_entries(manifest)


def test_segment_starting_at_zero_reads_only_its_span(tmp_path):
    audio = _wav(tmp_path / "long.wav", 3.0)
    manifest = _nemo(
        tmp_path / "m.jsonl",
        [
            {"audio_filepath": "long.wav", "offset": 0.0, "duration": 1.0, "id": "head"},
            {"audio_filepath": "long.wav", "offset": 1.0, "duration": 1.0, "id": "middle"},
        ],
    )
    head, middle = read_entries(manifest)
    assert audio_span(head)[1:] == (0.0, 1.0) and audio_span(middle)[1:] == (1.0, 1.0)
    ds = ExampleDataset([whole(head), whole(middle)], _Untargeted())
    assert ds[0]["audio"].shape == (16000,) and ds[1]["audio"].shape == (16000,)
    assert torch.allclose(ds[0]["audio"], torch.from_numpy(audio[:16000]), atol=1e-4)  # 16-bit wav


def test_fingerprint_does_not_depend_on_where_the_data_sit(tmp_path):
    for where in ("one", "two"):
        _wav(tmp_path / where / "audio" / "a.wav", 1.0)
        _nemo(tmp_path / where / "m.jsonl", [{"audio_filepath": str(tmp_path / where / "audio" / "a.wav")}])
    one, two = (data_fingerprint([tmp_path / w / "m.jsonl"]) for w in ("one", "two"))
    assert one == two
    _wav(tmp_path / "two" / "audio" / "a.wav", 1.5)  # other audio: another fingerprint
    assert data_fingerprint([tmp_path / "two" / "m.jsonl"]) != one


class _Untargeted:
    def make_target(self, example):
        return None


def test_evaluation_set_with_no_audio_is_an_error(tmp_path):
    empty = tmp_path / "test.jsonl"
    empty.write_text("\n")
    with pytest.raises(ManifestError, match="test.jsonl: manifest has no entries"):
        read_entries(empty)
