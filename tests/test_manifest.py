import json

import pytest

from nestbench.manifest import ManifestError, read_manifest


def _write(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_relative_paths_resolve_beside_manifest(tmp_path):
    (tmp_path / "audio").mkdir()
    (tmp_path / "audio" / "a.wav").write_bytes(b"x")
    m = _write(tmp_path / "m.jsonl", [{"audio_filepath": "audio/a.wav", "duration": 1.5, "id": "utt1"}])
    (entry,) = read_manifest(m)
    assert entry.audio_filepath == tmp_path / "audio" / "a.wav"
    assert entry.duration == 1.5 and entry.utt_id == "utt1" and entry.line == 1


def test_missing_audio_names_manifest_line(tmp_path):
    (tmp_path / "a.wav").write_bytes(b"x")
    m = _write(tmp_path / "m.jsonl", [{"audio_filepath": "a.wav"}, {"audio_filepath": "gone.wav"}])
    with pytest.raises(ManifestError, match=r"m\.jsonl:2: gone\.wav"):
        read_manifest(m)


def test_bad_json_and_missing_key(tmp_path):
    with pytest.raises(ManifestError, match=r"bad\.jsonl:2: not valid JSON"):
        read_manifest(_write(tmp_path / "bad.jsonl", [{"audio_filepath": "x"}, "{oops"]), check_audio=False)
    with pytest.raises(ManifestError, match=r"nokey\.jsonl:1: entry has no 'audio_filepath'"):
        read_manifest(_write(tmp_path / "nokey.jsonl", [{"path": "x"}]), check_audio=False)
    with pytest.raises(ManifestError, match="'duration' must be a number"):
        read_manifest(_write(tmp_path / "dur.jsonl", [{"audio_filepath": "x", "duration": "long"}]), check_audio=False)
