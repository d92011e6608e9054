import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from nestbench.audio import AudioError, AudioReader

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def _tone(seconds: float, sr: int, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_8khz_is_resampled_and_logged_once(tmp_path, caplog):
    for i in range(3):
        sf.write(tmp_path / f"a{i}.wav", _tone(1.0, 8000), 8000, subtype="PCM_16")
    reader = AudioReader(16000)
    with caplog.at_level(logging.WARNING):
        outs = [reader.read(tmp_path / f"a{i}.wav") for i in range(3)]
    assert all(len(o) == 16000 and o.dtype == np.float32 for o in outs)
    # the 440 Hz tone survives resampling: its spectrum peaks at 440 Hz
    spectrum = np.abs(np.fft.rfft(outs[0]))
    assert abs(np.argmax(spectrum) * 16000 / len(outs[0]) - 440) < 2
    assert sum("resampling" in r.message for r in caplog.records) == 1
    assert reader.conversions["resample"] == 3


def test_stereo_is_downmixed(tmp_path, caplog):
    left, right = _tone(0.5, 16000, 300), _tone(0.5, 16000, 500)
    sf.write(tmp_path / "st.flac", np.stack([left, right], axis=1), 16000)
    reader = AudioReader(16000)
    with caplog.at_level(logging.WARNING):
        mono = reader.read(tmp_path / "st.flac")
    np.testing.assert_allclose(mono, (left + right) / 2, atol=1e-4)
    assert any("downmixing" in r.message for r in caplog.records)


def test_segment_offset_duration(tmp_path):
    x = np.linspace(-0.5, 0.5, 32000, dtype=np.float32)
    sf.write(tmp_path / "x.wav", x, 16000, subtype="FLOAT")
    seg = AudioReader(16000).read(tmp_path / "x.wav", offset=0.5, duration=0.25)
    np.testing.assert_allclose(seg, x[8000:12000])


@pytest.mark.parametrize(
    ("content", "expected"),
    [(b"", "cannot decode"), (b"RIFF\x10\x00\x00\x00WAVEfmt garbage", "cannot decode")],
)
def test_corrupt_files_name_the_file(tmp_path, content, expected):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(content)
    with pytest.raises(AudioError, match=expected) as err:
        AudioReader().read(bad)
    assert str(bad) in str(err.value)


def test_empty_audio_is_an_error(tmp_path):
    sf.write(tmp_path / "empty.wav", np.zeros(0, dtype=np.float32), 16000)
    with pytest.raises(AudioError, match="empty"):
        AudioReader().read(tmp_path / "empty.wav")


def test_missing_file(tmp_path):
    with pytest.raises(AudioError, match="not found"):
        AudioReader().read(tmp_path / "nope.wav")
    with pytest.raises(AudioError, match="not found"):
        AudioReader().duration(tmp_path / "nope.wav")


@pytest.mark.skipif(not (SHARED / "asr").is_dir(), reason="../shared/data not present")
def test_real_ljspeech_22k_clip_resampled():
    clip = SHARED / "asr" / "audio" / "LJ002-0020.wav"
    info = sf.info(str(clip))
    assert info.samplerate == 22050
    out = AudioReader(16000).read(clip)
    assert abs(len(out) - info.frames * 16000 / 22050) <= 1
    assert 0.01 < np.abs(out).max() <= 1.0
