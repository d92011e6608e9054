"""`nestbench extract` end to end on the NeMo-made fixture checkpoint and real audio files."""

import json
import os
import shutil
import stat
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from nestbench.cli import main
from nestbench.extract import Utterance, _batches, parse_layers

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "parity" / "tiny"
NEMO = FIXTURE / "nest_tiny.nemo"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NESTBENCH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _run(*args) -> int:
    return main(["extract", "--model", str(NEMO), "--quiet", *map(str, args)])


def _index(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "index.jsonl").read_text().splitlines()]


def test_manifest_all_layers_match_nemo_reference(tmp_path, cache, capsys):
    out = tmp_path / "out"
    assert _run("--input", FIXTURE / "manifest.jsonl", "--output", out, "--layers", "all") == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["written"] == 3 and summary["bad"] == 0
    ref = np.load(FIXTURE / "reference.npz")
    for utt in map(str, ref["utt_ids"]):
        feats = np.load(out / f"{utt}.npy")
        expected = ref[f"single/{utt}/layers"][:, : int(ref[f"single/{utt}/enc_len"])]
        assert feats.shape == expected.shape  # [n_layers, T, D]
        assert np.abs(feats - expected).max() <= 1e-4
    index = _index(out)
    assert sorted(r["utt_id"] for r in index) == sorted(map(str, ref["utt_ids"]))
    assert all(r["layers"] == [0, 1, 2] and r["frames"] == r["shape"][1] for r in index)
    meta = json.loads((out / "meta.json").read_text())
    assert len(meta["checkpoint_sha256"]) == 64 and meta["frame_shift_seconds"] == pytest.approx(0.08)


def test_rerun_skips_finished_and_resumes_interrupted(tmp_path, cache, capsys):
    out = tmp_path / "out"
    assert _run("--input", FIXTURE / "manifest.jsonl", "--output", out) == 0
    capsys.readouterr()
    done = {p.name: p.stat().st_mtime_ns for p in out.glob("*.npy")}
    # simulate a kill: the last array lost, its index line torn in half
    lines = (out / "index.jsonl").read_text().splitlines()
    last = json.loads(lines[-1])
    (out / last["file"]).unlink()
    (out / "index.jsonl").write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:20])
    assert _run("--input", FIXTURE / "manifest.jsonl", "--output", out) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["written"] == 1 and summary["already_done"] == 2
    for name, mtime in done.items():
        if name != last["file"]:
            assert (out / name).stat().st_mtime_ns == mtime  # untouched
    assert len(_index(out)) == 3


def test_a_finished_id_whose_input_changed_is_recomputed(tmp_path, cache, capsys, caplog):
    audio = FIXTURE / "audio"
    wav = tmp_path / "b.wav"
    shutil.copy(audio / "utt_short.wav", wav)
    manifest = tmp_path / "m.jsonl"

    def extract(**paths) -> dict:
        manifest.write_text("".join(json.dumps({"id": i, "audio_filepath": str(p)}) + "\n" for i, p in paths.items()))
        assert _run("--input", manifest, "--output", tmp_path / "out") == 0
        return json.loads(capsys.readouterr().out.strip().splitlines()[-1])

    extract(a=audio / "utt_short.wav", b=wav)
    summary = extract(a=audio / "utt_mid.wav", b=wav)  # the manifest now points 'a' at other audio
    assert summary["written"] == 1 and summary["already_done"] == 1
    assert "a: its input changed since it was extracted; recomputing it" in caplog.text
    data, sr = sf.read(audio / "utt_long.wav", dtype="float32")
    sf.write(wav, data, sr)  # 'b' rewritten in place
    assert extract(a=audio / "utt_mid.wav", b=wav)["written"] == 1
    index = {r["utt_id"]: r for r in _index(tmp_path / "out")}
    assert len(_index(tmp_path / "out")) == 2  # the stale lines were replaced, not kept beside the new ones
    assert index["a"]["made_from"]["path"] == str((audio / "utt_mid.wav").resolve())
    for utt, source in (("a", "utt_mid"), ("b", "utt_long")):
        fresh = tmp_path / f"fresh_{utt}"
        assert _run("--input", audio / f"{source}.wav", "--output", fresh) == 0
        np.testing.assert_array_equal(np.load(tmp_path / "out" / f"{utt}.npy"), np.load(fresh / f"{source}.npy"))


def test_unavailable_device_is_refused_before_the_output_folder(tmp_path, cache, capsys, monkeypatch):
    import torch

    wav = FIXTURE / "audio" / "utt_short.wav"
    out = tmp_path / "out"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for device, says in (("cuda", "torch finds no cuda device"), ("gpu", "not a torch device")):
        assert _run("--input", wav, "--output", out, "--device", device) == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err
        assert err.strip().splitlines()[-1].startswith(f"nestbench extract: error: device '{device}'")
        assert says in err and not out.exists()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert _run("--input", wav, "--output", out, "--device", "cuda:2") == 2
    assert "this machine has 2 cuda device(s)" in capsys.readouterr().err and not out.exists()


def test_folder_input_layer_subsets_and_conversions(tmp_path, cache):
    src = tmp_path / "wavs"
    src.mkdir()
    audio, sr = sf.read(FIXTURE / "audio" / "utt_mid.wav", dtype="float32")
    sf.write(src / "plain.wav", audio, sr)
    sf.write(src / "stereo.flac", np.stack([audio, audio], axis=1), sr)  # downmixed
    import torch
    import torchaudio.functional as AF

    sf.write(src / "narrow.wav", AF.resample(torch.from_numpy(audio), sr, 8000).numpy(), 8000)  # resampled
    out = tmp_path / "out"
    assert _run("--input", src, "--output", out, "--layers", "0,-1") == 0
    plain, stereo, narrow = (np.load(out / f"{n}.npy") for n in ("plain", "stereo", "narrow"))
    assert plain.shape[0] == 2
    assert np.abs(plain - stereo).max() < 1e-4  # identical channels downmix to the same signal
    assert narrow.shape == plain.shape  # same duration after resampling back to 16 kHz
    assert all(r["layers"] == [0, 2] for r in _index(out))
    # a rerun with other layers into the same folder is refused instead of mixing
    assert _run("--input", src, "--output", out, "--layers", "last") == 2


def test_bad_file_stops_with_its_path_or_is_reported(tmp_path, cache, capsys):
    src = tmp_path / "wavs"
    src.mkdir()
    shutil.copy(FIXTURE / "audio" / "utt_short.wav", src / "good.wav")
    (src / "corrupt.wav").write_bytes(b"RIFF....WAVEnot really audio")
    sf.write(src / "tiny.wav", np.zeros(100, dtype=np.float32), 16000)
    out = tmp_path / "out"
    assert _run("--input", src, "--output", out) == 2
    assert str(src / "corrupt.wav") in capsys.readouterr().err
    assert _run("--input", src, "--output", out, "--skip-bad") == 0
    bad = [json.loads(line) for line in (out / "bad_inputs.jsonl").read_text().splitlines()]
    assert {b["utt_id"] for b in bad} == {"corrupt", "tiny"}
    assert any("shorter than one analysis frame" in b["error"] for b in bad)
    assert (out / "good.npy").exists() and not (out / "corrupt.npy").exists()


def test_published_arrays_and_meta_get_the_mode_of_an_ordinary_write(tmp_path, cache):
    old = os.umask(0o022)
    try:
        assert _run("--input", FIXTURE / "audio" / "utt_short.wav", "--output", tmp_path / "out") == 0
    finally:
        os.umask(old)
    for name in ("utt_short.npy", "meta.json"):
        assert stat.S_IMODE((tmp_path / "out" / name).stat().st_mode) == 0o644, name


def test_bfloat16_close_to_float32(tmp_path, cache):
    a, b = tmp_path / "f32", tmp_path / "bf16"
    wav = FIXTURE / "audio" / "utt_long.wav"
    assert _run("--input", wav, "--output", a) == 0
    assert _run("--input", wav, "--output", b, "--dtype", "bfloat16") == 0
    x, y = np.load(a / "utt_long.npy"), np.load(b / "utt_long.npy")
    assert x.shape == y.shape and y.dtype == np.float32
    rel = np.linalg.norm(x - y) / np.linalg.norm(x)
    assert 0 < rel < 0.05  # bf16 differs, but only by rounding


def test_missing_manifest_audio_fails_before_loading(tmp_path, cache, capsys):
    m = tmp_path / "m.jsonl"
    m.write_text(json.dumps({"audio_filepath": "nowhere.wav"}) + "\n")
    assert _run("--input", m, "--output", tmp_path / "out") == 2
    assert "m.jsonl:1: nowhere.wav" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_parse_layers():
    assert parse_layers("all", 4) == [0, 1, 2, 3]
    assert parse_layers("last", 4) == [3]
    assert parse_layers("2,0,-1", 4) == [0, 2, 3]
    for bad in ("5", "x", ""):
        with pytest.raises(ValueError, match="--layers"):
            parse_layers(bad, 4)


def test_length_sorted_batches_keep_padding_under_ten_percent():
    rng = np.random.default_rng(0)
    durations = np.clip(rng.lognormal(1.8, 0.6, size=500), 0.5, 30.0)  # a LibriSpeech-like spread
    todo = sorted(
        ((float(d), Utterance(str(i), Path(f"{i}.wav"))) for i, d in enumerate(durations)), key=lambda x: -x[0]
    )
    dur = {u.utt_id: d for d, u in todo}
    computed = padding = 0.0
    for batch in _batches(todo, batch_size=16, max_batch_seconds=320):
        longest = max(dur[u.utt_id] for u in batch)
        computed += longest * len(batch)
        padding += sum(longest - dur[u.utt_id] for u in batch)
    assert padding / computed < 0.10


@pytest.mark.skipif(not (SHARED / "asr").is_dir(), reason="../shared/data not present")
def test_real_librispeech_manifest(tmp_path, cache):
    out = tmp_path / "out"
    assert (
        _run("--input", SHARED / "asr" / "manifest.jsonl", "--output", out, "--layers", "last", "--batch-size", "4")
        == 0
    )
    index = _index(out)
    assert len(index) == 11
    for rec in index:
        feats = np.load(out / rec["file"])
        assert feats.shape[0] == 1 and np.isfinite(feats).all()
        assert abs(rec["frames"] - rec["duration"] / 0.08) <= 2  # 80 ms frames
