"""nestbench.synth.espeak: offline speech that is long enough, loud enough and controllable."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("espeakng_loader", reason="pip install espeakng-loader")

from nestbench.synth import NATIVE_SAMPLE_RATE, Voice, available_voices, espeak, synthesize  # noqa: E402

SHORT = "Hello there."
LONG = "The quick brown fox jumps over the lazy dog, and then runs back home again."


def _median_f0(x: np.ndarray, sr: int) -> float:
    """Crude autocorrelation pitch over loud frames: enough to tell voices and pitch settings apart."""
    lo, hi = int(sr / 400), int(sr / 60)
    estimates = []
    for start in range(0, len(x) - 1024, 512):
        w = x[start : start + 1024] - x[start : start + 1024].mean()
        if float((w**2).mean()) < 1e-3:
            continue
        ac = np.correlate(w, w, "full")[1023:]
        estimates.append(sr / (lo + int(np.argmax(ac[lo:hi]))))
    return float(np.median(estimates))


def test_output_is_finite_float32_speech_at_native_rate() -> None:
    audio, sr = synthesize(SHORT)
    assert sr == NATIVE_SAMPLE_RATE == 22050
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert np.isfinite(audio).all()
    assert np.abs(audio).max() <= 1.0
    assert float(np.sqrt((audio**2).mean())) > 0.01  # not silence
    assert 0.5 < len(audio) / sr < 3.0


def test_longer_text_gives_longer_audio() -> None:
    short, _ = synthesize(SHORT)
    long, _ = synthesize(LONG)
    assert len(long) > 2 * len(short)


def test_rate_changes_duration() -> None:
    slow, _ = synthesize(SHORT, Voice("en+m3", rate=120))
    fast, _ = synthesize(SHORT, Voice("en+m3", rate=300))
    assert len(slow) > 1.5 * len(fast)


def test_pitch_and_voice_change_the_signal() -> None:
    low, _ = synthesize(SHORT, Voice("en+m3", pitch=10))
    high, _ = synthesize(SHORT, Voice("en+m3", pitch=90))
    female, _ = synthesize(SHORT, Voice("en+f3"))
    assert _median_f0(high, 22050) > 1.3 * _median_f0(low, 22050)
    assert _median_f0(female, 22050) > 1.5 * _median_f0(low, 22050)
    n = min(len(low), len(female))
    assert not np.allclose(low[:n], female[:n])


def test_same_process_history_gives_same_audio() -> None:
    """espeak-ng's flutter phase carries over between calls, so compare two fresh processes instead."""
    code = (
        "import sys, hashlib; from nestbench.synth import synthesize;"
        f"a, _ = synthesize({SHORT!r}); sys.stdout.write(hashlib.sha1(a.tobytes()).hexdigest())"
    )
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    digests = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                              env=env).stdout for _ in range(2)}  # fmt: skip
    assert len(digests) == 1


def test_resample_to_16k_has_expected_length(monkeypatch: pytest.MonkeyPatch) -> None:
    native = (synthesize(SHORT)[0] * 32768).astype(np.int16)
    # Pin the native samples: consecutive real calls differ by a few samples (see module docstring).
    monkeypatch.setattr(espeak, "_synthesize_native", lambda text, voice: native)
    audio, sr = synthesize(SHORT, sample_rate=16000)
    assert sr == 16000 and audio.dtype == np.float32
    assert len(audio) == math.ceil(len(native) * 16000 / 22050)
    assert np.isfinite(audio).all() and np.abs(audio).max() <= 1.0
    rms_native = float(np.sqrt(((native / 32768.0) ** 2).mean()))
    assert float(np.sqrt((audio**2).mean())) == pytest.approx(rms_native, rel=0.1)


def test_available_voices_include_standard_variants() -> None:
    voices = available_voices()
    expected = {f"en+m{i}" for i in range(1, 8)} | {f"en+f{i}" for i in range(1, 6)}
    assert expected <= set(voices)


@pytest.mark.parametrize(
    "voice",
    [Voice(pitch=100), Voice(rate=10), Voice(name="xx+nope")],
    ids=["pitch", "rate", "name"],
)
def test_bad_voice_is_rejected(voice: Voice) -> None:
    with pytest.raises((ValueError, RuntimeError)):
        synthesize(SHORT, voice)


def test_empty_text_is_rejected() -> None:
    with pytest.raises(ValueError):
        synthesize("   ")
