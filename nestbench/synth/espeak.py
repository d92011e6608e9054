"""Offline synthetic speech through libespeak-ng, as shipped by the ``espeakng-loader`` wheel.

Why: tests, demos and parity fixtures need speech-like audio (voiced harmonics, formants, pauses) of
controlled length without any network access or data set. espeak-ng is small, deterministic and
pip-installable, so we drive its C API directly through ``ctypes``.

libespeak-ng keeps all of its state in globals, so the library is initialised once per process and
every call into it is serialised by a single lock.

Reproducibility: the random generator is reseeded before every call, but every voice applies pitch
flutter (default amount 64) whose phase espeak-ng keeps in function-static variables that no API
resets, so a call's samples (and length, by a few samples) depend on what the process synthesised
before. A fresh process making the same calls in the same order gets identical audio; persist the
audio (as the parity fixtures do) when bit-exact input matters.
"""

from __future__ import annotations

import ctypes
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

NATIVE_SAMPLE_RATE = 22050
"""espeak-ng's synthesiser always runs at this rate; anything else is a resample."""

# Values of the C enums in espeak-ng's speak_lib.h.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_PARAM_RATE = 1
_PARAM_PITCH = 3
_EE_OK = 0
_SEED = 1234  # espeak-ng jitters some voices with rand(); a fixed seed keeps output reproducible.

# int callback(short *wav, int numsamples, espeak_EVENT *events); returning 1 would abort synthesis.
_SynthCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)

_LOCK = threading.Lock()
_lib: ctypes.CDLL | None = None
_data_path: Path | None = None
_callback: object | None = None  # kept referenced: ctypes would free a collected trampoline.
_chunks: list[bytes] = []  # filled by the callback while _LOCK is held


# English voice variants that sound like a person (checked one by one: the robot, echo, whisper, klatt and
# croak variants are out, and so are those that clip at full scale: iven, antonio, ed, paul, ...).
HUMAN_LIKE_VARIANTS: tuple[str, ...] = (
    "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "Alex", "Denis", "Diogo", "Gene", "Henrique", "Hugo",
    "Lee", "Mario", "Michael", "Mike", "Nguyen", "Storm", "adam", "benjamin", "boris", "david", "edward2",
    "grandpa", "gustave", "ian", "iven2", "iven3", "iven4", "kaukovalta", "marcelo", "max", "michel", "miguel",
    "mike2", "norbert", "pablo", "pedro", "quincy", "rob", "robert", "sandro", "travis", "victor", "f1", "f2",
    "f3", "f4", "f5", "Alicia", "Andrea", "Annie", "aunty", "grandma", "linda", "shelby", "steph", "steph2",
)  # fmt: skip


@dataclass(frozen=True)
class Voice:
    """An espeak voice: ``name`` is ``language[+variant]``, ``rate`` in words/min, ``pitch`` in 0-99."""

    name: str = "en+m1"
    rate: int = 175
    pitch: int = 50


def _on_samples(wav: ctypes._Pointer, numsamples: int, events: int | None) -> int:
    if wav and numsamples > 0:
        _chunks.append(ctypes.string_at(wav, numsamples * ctypes.sizeof(ctypes.c_short)))
    return 0


def _load() -> ctypes.CDLL:
    """Load and initialise libespeak-ng once; the caller holds ``_LOCK``."""
    global _lib, _data_path, _callback
    if _lib is not None:
        return _lib
    try:
        import espeakng_loader
    except ImportError as exc:
        raise ImportError("nestbench.synth needs the espeakng-loader wheel: pip install espeakng-loader") from exc
    lib = ctypes.CDLL(espeakng_loader.get_library_path())
    data_path = Path(espeakng_loader.get_data_path())

    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
    lib.espeak_SetSynthCallback.restype = None
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetVoiceByName.restype = ctypes.c_int
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_SetParameter.restype = ctypes.c_int
    lib.espeak_Synth.argtypes = [
        ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
        ctypes.c_uint, ctypes.c_uint, ctypes.POINTER(ctypes.c_uint), ctypes.c_void_p,
    ]  # fmt: skip
    lib.espeak_Synth.restype = ctypes.c_int
    lib.espeak_Synchronize.argtypes = []
    lib.espeak_Synchronize.restype = ctypes.c_int

    rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, str(data_path).encode(), 0)
    if rate != NATIVE_SAMPLE_RATE:
        raise RuntimeError(f"espeak_Initialize failed or reported rate {rate} (want 22050) for {data_path}")
    _callback = _SynthCallback(_on_samples)
    lib.espeak_SetSynthCallback(_callback)
    _lib, _data_path = lib, data_path
    return lib


def _reseed(lib: ctypes.CDLL) -> None:
    """Reset espeak-ng's random generator so the same request gives the same samples (1.52+ only)."""
    seed_fn = getattr(lib, "espeak_ng_SetRandSeed", None)
    if seed_fn is not None:
        seed_fn.argtypes = [ctypes.c_long]
        seed_fn.restype = None
        seed_fn(_SEED)


def _check(status: int, what: str) -> None:
    if status != _EE_OK:
        raise RuntimeError(f"espeak-ng {what} failed with status {status}")


def _synthesize_native(text: str, voice: Voice) -> np.ndarray:
    """int16 samples at 22.05 kHz; serialised because espeak-ng is one global synthesiser."""
    with _LOCK:
        lib = _load()
        _check(lib.espeak_SetVoiceByName(voice.name.encode()), f"SetVoiceByName({voice.name!r})")
        _check(lib.espeak_SetParameter(_PARAM_RATE, voice.rate, 0), "SetParameter(rate)")
        _check(lib.espeak_SetParameter(_PARAM_PITCH, voice.pitch, 0), "SetParameter(pitch)")
        _reseed(lib)
        buf = ctypes.create_string_buffer(text.encode("utf-8"))
        _chunks.clear()
        try:
            _check(lib.espeak_Synth(buf, len(buf), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None), "Synth")
            _check(lib.espeak_Synchronize(), "Synchronize")
            raw = b"".join(_chunks)
        finally:
            _chunks.clear()
    return np.frombuffer(raw, dtype=np.int16)


def synthesize(text: str, voice: Voice = Voice(), sample_rate: int | None = None) -> tuple[np.ndarray, int]:
    """Speak ``text``; return float32 mono samples in [-1, 1] and their rate.

    The native rate is 22.05 kHz; ``sample_rate`` resamples with torchaudio (imported only then, so the
    plain path needs nothing beyond numpy).
    """
    if not text.strip():
        raise ValueError("synthesize() needs non-empty text")
    if not 0 <= voice.pitch <= 99:
        raise ValueError(f"pitch must be in 0..99, got {voice.pitch}")
    if not 80 <= voice.rate <= 450:
        raise ValueError(f"rate must be in 80..450 words/min, got {voice.rate}")
    samples = _synthesize_native(text, voice)
    if samples.size == 0:
        raise RuntimeError(f"espeak-ng produced no audio for {text!r} with voice {voice.name!r}")
    audio = samples.astype(np.float32) / 32768.0
    if sample_rate is None or sample_rate == NATIVE_SAMPLE_RATE:
        return audio, NATIVE_SAMPLE_RATE
    import torch
    import torchaudio.functional as taf

    resampled = taf.resample(torch.from_numpy(audio), NATIVE_SAMPLE_RATE, sample_rate)
    return resampled.clamp_(-1.0, 1.0).numpy().astype(np.float32, copy=False), sample_rate


def phonemes(text: str, voice: str = "en") -> str:
    """espeak-ng's phoneme string for ``text``, clause by clause: what a synthetic corpus checks its
    transcripts against (the words spoken are the words written)."""
    with _LOCK:
        lib = _load()
        _check(lib.espeak_SetVoiceByName(voice.encode()), f"SetVoiceByName({voice!r})")
        lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_char_p), ctypes.c_int, ctypes.c_int]
        lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        buffer = ctypes.create_string_buffer(text.encode("utf-8"))
        cursor = ctypes.c_char_p(ctypes.addressof(buffer))
        clauses = []
        while cursor.value:
            clauses.append(lib.espeak_TextToPhonemes(ctypes.byref(cursor), _CHARS_UTF8, 0).decode("utf-8"))
    return " ".join(clauses)


def available_voices() -> list[str]:
    """English voice names usable as ``Voice.name``: plain ``en`` and every ``en+<variant>`` shipped."""
    with _LOCK:
        _load()
        assert _data_path is not None
        variant_dir = _data_path / "voices" / "!v"
    variants = sorted(p.name for p in variant_dir.iterdir() if p.is_file() and " " not in p.name)
    return ["en"] + [f"en+{v}" for v in variants]
