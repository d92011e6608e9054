"""lhotse CutSet manifests are read like NeMo manifests (the supervision's custom fields become entry fields)."""

import numpy as np
import pytest
import soundfile as sf

from nestbench.data import ManifestData, data_fingerprint, read_entries
from nestbench.manifest import ManifestError, read_manifest

lhotse = pytest.importorskip("lhotse")


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
