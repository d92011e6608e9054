"""A small speaker-diarization corpus of synthetic conversations spoken by espeak-ng, for offline experiments.

Why: diarization needs multi-speaker recordings with exact "who spoke when" labels, overlaps included, and
no such corpus can be downloaded offline. This writes sessions of 1-3 minutes in which 2-4 speakers take
turns, interrupt each other and backchannel, with reference RTTMs that match the audio to the sample.

Speakers are the speaker-verification corpus's identities (``nestbench.synth.voices``: voice variant,
pitch, rate, vocal-tract warp, spectral colouring), drawn from one pool per split, disjoint between splits.
With the default pools (36 + 10 + 14 = 60, the number of usable variants) no two speakers anywhere share a
variant. Sessions of 2, 3 and 4 speakers are equally many per split, and draw their speakers from the
split's pool least-used first, so every speaker takes part.

A conversation is planned as a sequence of turns: every participant speaks once, in random order, then the
next speaker is any other participant; the text is the SV corpus's grammar, sized for a log-uniform 1-8 s
of speech; each turn carries a pause (log-uniform 0.1-1.5 s), an overlap length (0.2-2 s) and, sometimes,
a backchannel ("yeah", "mm hmm", ...) by another participant. Turns are rendered, trimmed to their speech
extent and only then placed on the timeline (``layout_session``), from their real lengths: each transition
is an overlap when that brings the session's overlapped share of speech time closer to its target (drawn
per session from ``overlap_range``) and a pause otherwise, so the achieved overlap follows the target
whatever the real turn lengths. The reference turn is the placed speech extent, in samples, so labels are
exact. No speaker ever overlaps itself and at most two
speak at once: a turn starts after the turn before the previous one ends, and a backchannel lies inside its
turn's solo part. A session ends a short silence after the last turn that fits its drawn length.

Each session has one channel colouring (a tilt and a peaking band, shared by its speakers: one room and
microphone), per-speaker levels a few dB apart, and stationary noise (white to brown, a random tilt) at a
random SNR against the active speech level.

Default sizes: 40 train sessions (79 min; each of the 36 train speakers in about 3 sessions), 8 dev and 12
test sessions (15 and 21 min; 10 and 14 speakers; enough sessions of each size to report DER per speaker
count), 1 h 56 min of 16-bit audio in all (213 MB). Measured (seed 0): built in 25-30 s on one core, overlap 15.3 /
16.0 / 15.3 % of speech time (train / dev / test), every session within 1.6 points of its target; the SV
quickstart's tiny NEST (d192, 4 layers) encodes it all in under a minute on two cores (about 150 times
real time), and a head then trains on a few hundred 10 s windows per epoch.

Reproducibility: the plan is a pure function of the config; the audio (and so the exact turn lengths) is too
in a fresh process (see ``nestbench.synth.espeak`` on espeak-ng's flutter state).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from nestbench.synth.espeak import Voice, synthesize
from nestbench.synth.grammar import INVENTORY, MIN_CLAUSE, WORDS_PER_RATE_WORD, n_words_for, sentence
from nestbench.synth.voices import (
    SILENCE_DB,
    VARIANTS,
    Band,
    IdentityRenderer,
    Speaker,
    active_rms,
    draw_speakers,
    espeak_voice,
    gain_db,
    random_band,
)

from ..fileio import write_text_atomic
from ..threads import torch_threads
from .markers import IN_PROGRESS as _IN_PROGRESS
from .markers import MARKER, claim, finished_hash

SPLITS = ("train", "dev", "test")
_FORMAT_VERSION = 1  # bump when the output changes in a way the config and inventories do not capture
BACKCHANNELS = ("yeah", "right", "mm hmm", "okay", "uh huh", "i see", "sure", "oh really")
_PEAK = 0.95  # a louder session is scaled down to this peak
_BACKCHANNEL_MARGIN_S = 0.2  # a backchannel keeps this far from the ends of its turn's solo part
_PLAN_MARGIN = 1.5  # turns are planned for this many times the session length, in case speech runs short


@dataclass(frozen=True)
class DiarMiniConfig:
    """Sizes, conversation statistics and nuisance ranges of the corpus (see the module docstring for why).

    Sizes: ``n_<split>_sessions``, ``n_<split>_speakers`` (the split's pool; each must hold ``max_speakers``).
    Conversation: ``min_speakers``..``max_speakers`` per session (uniform), ``min_session_s``..
    ``max_session_s`` (uniform length), ``overlap_range`` (target share of speech time with two or more
    speakers, drawn per session), ``turn_s`` (speech per turn, log-uniform; at least one grammar clause),
    ``pause_s`` (silence between turns, log-uniform), ``overlap_s`` (how early a turn may start before the
    previous one ends, uniform; capped at half of either turn), ``backchannel_probability`` (per turn).
    Nuisance: ``level_db_range`` (session speech RMS, dBFS), ``level_jitter_db`` (each speaker within ± of
    it), ``snr_db_range`` (noise vs active speech RMS), ``noise_tilt_db_per_octave`` (0 white, -3 pink,
    -6 brown), ``channel_tilt_db_per_octave`` and ``channel_eq_db`` (per session). Identity ranges and
    per-turn ``pitch_jitter`` / ``rate_jitter``: as in ``nestbench.synth.sv_mini.SvMiniConfig``.
    """

    n_train_sessions: int = 40
    n_dev_sessions: int = 8
    n_test_sessions: int = 12
    n_train_speakers: int = 36
    n_dev_speakers: int = 10
    n_test_speakers: int = 14
    min_speakers: int = 2
    max_speakers: int = 4
    min_session_s: float = 60.0
    max_session_s: float = 180.0
    overlap_range: tuple[float, float] = (0.10, 0.20)
    turn_s: tuple[float, float] = (1.0, 8.0)
    pause_s: tuple[float, float] = (0.1, 1.5)
    overlap_s: tuple[float, float] = (0.2, 2.0)
    backchannel_probability: float = 0.2
    level_db_range: tuple[float, float] = (-30.0, -22.0)
    level_jitter_db: float = 3.0
    snr_db_range: tuple[float, float] = (10.0, 30.0)
    noise_tilt_db_per_octave: tuple[float, float] = (-6.0, 0.0)
    channel_tilt_db_per_octave: float = 1.0
    channel_eq_db: float = 4.0
    pitch_range: tuple[int, int] = (15, 85)
    rate_range: tuple[int, int] = (140, 210)
    warp_range: tuple[float, float] = (0.88, 1.12)
    tilt_db_per_octave: float = 2.0
    eq_gain_db: tuple[float, float] = (3.0, 8.0)
    pitch_jitter: int = 5
    rate_jitter: float = 0.08
    sample_rate: int = 16000
    seed: int = 0

    def __post_init__(self) -> None:
        def ordered(name: str, low: float, high: float | None = None) -> None:
            lo, hi = getattr(self, name)
            if not (low <= lo <= hi and (high is None or hi <= high)):
                bound = f"{low} <= lo <= hi" + ("" if high is None else f" <= {high}")
                raise ValueError(f"{name} must be (lo, hi) with {bound}, got {getattr(self, name)}")

        if min(self.n_sessions(s) for s in SPLITS) < 1:
            raise ValueError("n_train_sessions, n_dev_sessions and n_test_sessions must each be >= 1")
        if not 2 <= self.min_speakers <= self.max_speakers:
            raise ValueError(f"need 2 <= min_speakers <= max_speakers, got {self.min_speakers}, {self.max_speakers}")
        if min(self.n_speakers(s) for s in SPLITS) < self.max_speakers:
            raise ValueError(
                f"each split's speaker pool (n_<split>_speakers) must hold max_speakers = {self.max_speakers}"
            )
        if not 10.0 <= self.min_session_s <= self.max_session_s:
            raise ValueError(
                f"need 10 <= min_session_s <= max_session_s, got {self.min_session_s}, {self.max_session_s}"
            )
        ordered("overlap_range", 0.0, 0.5)
        ordered("turn_s", 0.5, self.min_session_s / 2)  # a session holds a few turns
        ordered("pause_s", 0.01)  # log-uniform: lo > 0
        ordered("overlap_s", 0.05)
        ordered("level_db_range", -60.0, -6.0)
        ordered("snr_db_range", -10.0)
        ordered("noise_tilt_db_per_octave", -12.0, 12.0)
        if not 0.0 <= self.backchannel_probability <= 1.0:
            raise ValueError(f"backchannel_probability must be in [0, 1], got {self.backchannel_probability}")
        if self.level_jitter_db < 0:
            raise ValueError(f"level_jitter_db must be >= 0, got {self.level_jitter_db}")
        if self.pitch_range[0] - self.pitch_jitter < 0 or self.pitch_range[1] + self.pitch_jitter > 99:
            raise ValueError("pitch_range widened by pitch_jitter must stay within espeak's 0..99")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0 (numpy SeedSequence), got {self.seed}")
        if self.sample_rate < 8000:
            raise ValueError(f"sample_rate must be >= 8000, got {self.sample_rate}")

    def n_sessions(self, split: str) -> int:
        return {"train": self.n_train_sessions, "dev": self.n_dev_sessions, "test": self.n_test_sessions}[split]

    def n_speakers(self, split: str) -> int:
        return {"train": self.n_train_speakers, "dev": self.n_dev_speakers, "test": self.n_test_speakers}[split]


@dataclass(frozen=True)
class Utterance:
    """Speech by one speaker: text, espeak voice, level (active RMS, dBFS) and the planner's length guess."""

    id: str
    speaker: str
    text: str
    voice: Voice
    level_db: float
    est_s: float


@dataclass(frozen=True)
class Turn:
    """A main turn and the draws for the transition after it; ``backchannel_at`` (0-1) places the
    backchannel within the turn's solo part."""

    utterance: Utterance
    pause_s: float
    overlap_s: float
    backchannel: Utterance | None
    backchannel_at: float


@dataclass(frozen=True)
class Session:
    """One planned conversation: participants, length limit, overlap target, channel, noise and turns."""

    id: str
    split: str
    speakers: tuple[str, ...]
    max_duration_s: float  # turns are added while they end before this less ``tail_s``
    overlap_target: float
    lead_s: float  # silence before the first turn
    tail_s: float  # silence after the last one
    channel_tilt_db_per_octave: float
    channel_band: Band
    snr_db: float
    noise_tilt_db_per_octave: float
    turns: tuple[Turn, ...]


@dataclass(frozen=True)
class DiarMiniPlan:
    speakers: tuple[Speaker, ...]
    sessions: dict[str, tuple[Session, ...]]


@dataclass(frozen=True)
class Segment:
    """One placed utterance, in samples: the reference turn ``[start, start + length)``."""

    utterance: Utterance
    start: int
    length: int


@dataclass(frozen=True)
class DiarMiniCorpus:
    """Where a finished corpus lives; paths in the manifests are relative to ``root``."""

    root: Path

    def _split(self, split: str, suffix: str) -> Path:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
        return Path(self.root) / f"{split}.{suffix}"

    def manifest(self, split: str) -> Path:
        return self._split(split, "jsonl")

    def rttm(self, split: str) -> Path:
        return self._split(split, "rttm")

    def uem(self, split: str) -> Path:
        return self._split(split, "uem")

    @property
    def meta(self) -> Path:
        return Path(self.root) / "meta.json"


# ---------------------------------------------------------------------------------------------- plan


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _estimated_s(text: str, rate: float) -> float:
    return round(len(text.split()) * 60.0 / (rate * WORDS_PER_RATE_WORD), 3)


def _utterance(uid: str, speaker: Speaker, text: str, rate: float, level_db: float, pitch_jitter: int,
               rng: np.random.Generator) -> Utterance:  # fmt: skip
    """``text`` at ``rate`` words/min (after the warp) with the speaker's pitch jittered."""
    pitch = speaker.pitch + int(rng.integers(-pitch_jitter, pitch_jitter + 1))
    return Utterance(uid, speaker.speaker, text, espeak_voice(speaker, rate, pitch), level_db, _estimated_s(text, rate))


def _session(
    sid: str, split: str, speakers: list[Speaker], config: DiarMiniConfig, rng: np.random.Generator
) -> Session:
    duration = round(float(rng.uniform(config.min_session_s, config.max_session_s)), 3)
    level = rng.uniform(*config.level_db_range)
    levels = {s.speaker: round(float(level + rng.uniform(-1, 1) * config.level_jitter_db), 2) for s in speakers}
    lead, tail = (round(float(x), 3) for x in rng.uniform(0.2, 1.0, size=2))
    turns, t, current = [], lead, None
    first = [speakers[j] for j in rng.permutation(len(speakers))]  # everyone speaks once before anyone twice
    while t < duration * _PLAN_MARGIN:
        speaker = first[len(turns)] if len(turns) < len(first) else _other(speakers, current, rng)
        rate = speaker.rate * (1.0 + rng.uniform(-1, 1) * config.rate_jitter)
        text = sentence(n_words_for(_log_uniform(rng, *config.turn_s), rate), rng)
        uid = f"{sid}-{len(turns):03d}"
        utterance = _utterance(uid, speaker, text, rate, levels[speaker.speaker], config.pitch_jitter, rng)
        backchannel, at = None, 0.0
        if rng.random() < config.backchannel_probability:
            other = _other(speakers, speaker, rng)
            rate = other.rate * (1.0 + rng.uniform(-1, 1) * config.rate_jitter)
            text = BACKCHANNELS[int(rng.integers(len(BACKCHANNELS)))]
            backchannel = _utterance(f"{uid}b", other, text, rate, levels[other.speaker], config.pitch_jitter, rng)
            at = round(float(rng.random()), 3)
        pause = round(_log_uniform(rng, *config.pause_s), 3)
        turns.append(Turn(utterance, pause, round(float(rng.uniform(*config.overlap_s)), 3), backchannel, at))
        t, current = t + utterance.est_s + pause, speaker
    return Session(
        id=sid, split=split, speakers=tuple(s.speaker for s in speakers), max_duration_s=duration,
        overlap_target=round(float(rng.uniform(*config.overlap_range)), 4), lead_s=lead, tail_s=tail,
        channel_tilt_db_per_octave=round(float(rng.uniform(-1, 1) * config.channel_tilt_db_per_octave), 3),
        channel_band=random_band(rng, config.channel_eq_db),
        snr_db=round(float(rng.uniform(*config.snr_db_range)), 2),
        noise_tilt_db_per_octave=round(float(rng.uniform(*config.noise_tilt_db_per_octave)), 2),
        turns=tuple(turns),
    )  # fmt: skip


def _other(speakers: list[Speaker], current: Speaker | None, rng: np.random.Generator) -> Speaker:
    choices = [s for s in speakers if s != current]
    return choices[int(rng.integers(len(choices)))]


def plan_diar_mini(config: DiarMiniConfig = DiarMiniConfig()) -> DiarMiniPlan:
    """The corpus without audio: speakers and sessions (participants, turns, texts, draws); cheap."""
    counts = [(split, config.n_speakers(split)) for split in SPLITS]
    speakers = draw_speakers(counts, config, np.random.default_rng([config.seed, 0]))
    sessions = {}
    for s, split in enumerate(SPLITS):
        pool = [spk for spk in speakers if spk.split == split]
        used = np.zeros(len(pool))
        rng = np.random.default_rng([config.seed, 1, s])
        n_ks = config.max_speakers - config.min_speakers + 1  # as many sessions of each size as can be
        ks = rng.permutation([config.min_speakers + i % n_ks for i in range(config.n_sessions(split))])
        planned = []
        for i, k in enumerate(ks.tolist()):
            chosen = np.argsort(used + rng.random(len(pool)) * 0.5, kind="stable")[:k]  # least used, ties random
            used[chosen] += 1
            participants = [pool[j] for j in sorted(chosen)]
            planned.append(_session(f"{split}_{i:03d}", split, participants, config,
                                    np.random.default_rng([config.seed, 2, s, i])))  # fmt: skip
        sessions[split] = tuple(planned)
    return DiarMiniPlan(speakers, sessions)


def config_hash(config: DiarMiniConfig) -> str:
    """Digest of everything that shapes the output, so a changed inventory also invalidates old corpora."""
    payload = {
        "config": asdict(config),
        "format": _FORMAT_VERSION,
        "inventory": [VARIANTS, *INVENTORY, BACKCHANNELS],
        "constants": [WORDS_PER_RATE_WORD, MIN_CLAUSE, SILENCE_DB, _PEAK, _BACKCHANNEL_MARGIN_S, _PLAN_MARGIN],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


# -------------------------------------------------------------------------------------------- layout


def layout_session(
    session: Session, length_of: Callable[[Utterance], int], config: DiarMiniConfig
) -> tuple[list[Segment], int]:
    """Place the session's turns from their real lengths in samples; return the segments and the length.

    The first turn that would end after ``max_duration_s - tail_s`` ends the session (its length is then
    the last turn's end plus ``tail_s``, at least ``min_session_s``). ``length_of`` is only asked about
    the turns that are considered, so a builder can render lazily.
    """
    sr = config.sample_rate
    tail = int(round(session.tail_s * sr))
    limit, min_overlap = int(round(session.max_duration_s * sr)) - tail, int(round(config.overlap_s[0] * sr))
    margin, target = int(round(_BACKCHANNEL_MARGIN_S * sr)), session.overlap_target
    segments: list[Segment] = []
    onset = prev_end = int(round(session.lead_s * sr))
    speech = overlapped = 0
    for i, turn in enumerate(session.turns):
        start, end = onset, onset + length_of(turn.utterance)
        if end > limit:
            break
        segments.append(Segment(turn.utterance, start, end - start))
        solo_start = max(start, prev_end)  # ends only grow, so [solo_start, end) is new speech
        overlapped, speech = overlapped + solo_start - start, speech + end - solo_start
        onset = end + int(round(turn.pause_s * sr))
        if i + 1 < len(session.turns):
            following = length_of(session.turns[i + 1].utterance)
            early = min(int(round(turn.overlap_s * sr)), (end - solo_start) // 2, following // 2)
            without = abs(overlapped - target * (speech + following))
            if early >= min_overlap and abs(overlapped + early - target * (speech + following - early)) < without:
                onset = end - early
        if turn.backchannel is not None:
            length = length_of(turn.backchannel)
            room = min(end, onset) - solo_start - 2 * margin - length
            if room >= 0:
                segments.append(
                    Segment(turn.backchannel, solo_start + margin + int(turn.backchannel_at * room), length)
                )
                overlapped += length
        prev_end = end
    n_samples = max(prev_end + tail, int(round(config.min_session_s * sr)))
    return sorted(segments, key=lambda g: (g.start, g.utterance.id)), n_samples


def speech_and_overlap(segments: list[Segment]) -> tuple[int, int]:
    """Samples with one or more speakers and with two or more, from the segments alone."""
    events = sorted([(g.start, 1) for g in segments] + [(g.start + g.length, -1) for g in segments])
    speech = overlap = active = 0
    for (t, step), (t_next, _) in zip(events[:-1], events[1:], strict=True):
        active += step
        speech += (t_next - t) * (active >= 1)
        overlap += (t_next - t) * (active >= 2)
    return speech, overlap


# --------------------------------------------------------------------------------------------- audio


class _Renderer:
    """Speak an utterance in its speaker's identity through the session's channel, at its level."""

    def __init__(self, config: DiarMiniConfig, speakers: tuple[Speaker, ...]) -> None:
        self.identity = IdentityRenderer(config.sample_rate)
        self.speakers = {s.speaker: s for s in speakers}
        self.frame = config.sample_rate // 100

    def __call__(self, utt: Utterance, session: Session) -> np.ndarray:
        native, _ = synthesize(utt.text, utt.voice)
        speaker = self.speakers[utt.speaker]
        speech = self.identity(native, speaker, session.channel_tilt_db_per_octave, (session.channel_band,))
        return speech * np.float32(10.0 ** (utt.level_db / 20.0) / active_rms(speech, self.frame))


def _noise(n: int, session: Session, speech_rms: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Stationary noise with the session's tilt, drawn in the frequency domain (one inverse FFT)."""
    n_fft = 1 << int(math.ceil(math.log2(n)))
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    spectrum = rng.standard_normal((freqs.shape[0], 2), dtype=np.float32).view(np.complex64)[:, 0]
    spectrum *= (10.0 ** (gain_db(freqs, session.noise_tilt_db_per_octave, ()) / 20.0)).astype(np.float32)
    spectrum[0] = 0.0  # no DC offset
    noise = np.fft.irfft(spectrum, n_fft)[:n].astype(np.float32, copy=False)
    return noise * np.float32(speech_rms * 10.0 ** (-session.snr_db / 20.0) / np.sqrt(np.mean(np.square(noise))))


def _mix(
    session: Session, render: _Renderer, config: DiarMiniConfig, rng: np.random.Generator
) -> tuple[np.ndarray, list[Segment]]:
    """The session's audio and its segments; each utterance is rendered once, when the layout asks."""
    speech: dict[str, np.ndarray] = {}

    def length_of(utt: Utterance) -> int:
        if utt.id not in speech:
            speech[utt.id] = render(utt, session)
        return speech[utt.id].shape[0]

    segments, n = layout_session(session, length_of, config)
    audio = np.zeros(n, np.float32)
    for g in segments:
        audio[g.start : g.start + g.length] += speech[g.utterance.id]
    reference_rms = active_rms(audio, render.frame) if segments else 10.0 ** (config.level_db_range[0] / 20.0)
    audio += _noise(n, session, reference_rms, config.sample_rate, rng)
    peak = float(np.abs(audio).max())
    if peak > _PEAK:
        audio *= np.float32(_PEAK / peak)
    return audio, segments


# ---------------------------------------------------------------------------------------------- build


def _rttm_lines(session: Session, segments: list[Segment], sample_rate: int) -> list[str]:
    return [f"SPEAKER {session.id} 1 {g.start / sample_rate:.3f} {g.length / sample_rate:.3f} <NA> <NA> "
            f"{g.utterance.speaker} <NA> <NA>\n" for g in segments]  # fmt: skip


def make_diar_mini(
    out_dir: str | Path, config: DiarMiniConfig = DiarMiniConfig(), *, progress: bool = True
) -> DiarMiniCorpus:
    """Write the corpus under ``out_dir`` and return its paths.

    Layout: ``audio/<split>/<uri>.wav`` (mono 16-bit PCM at ``config.sample_rate``), ``rttm/<split>/<uri>.rttm``
    (the session's reference, as NeMo wants one file per recording), ``<split>.rttm`` (all of the split's
    references), ``<split>.uem`` (``<uri> 1 0.000 <duration>``), ``<split>.jsonl`` (one line per session:
    ``audio_filepath``, ``duration``, ``id``, ``rttm_filepath``, ``num_speakers``, ``speakers``; paths
    relative to ``out_dir``) and ``meta.json`` (config, hash, per-split statistics, speaker identities).
    Idempotent: when ``.complete`` records the same config hash nothing is redone; an interrupted build
    (``.in_progress`` left behind) or another config's corpus is cleared and rebuilt.
    """
    corpus = DiarMiniCorpus(Path(out_dir))
    digest = config_hash(config)
    if finished_hash(corpus.root) == digest:
        return corpus
    out = Path(corpus.root)
    written = [f(s) for s in SPLITS for f in (corpus.manifest, corpus.rttm, corpus.uem)] + [corpus.meta]
    claim(out, written, [out / "audio" / s for s in SPLITS] + [out / "rttm" / s for s in SPLITS], "make_diar_mini")
    plan = plan_diar_mini(config)
    render = _Renderer(config, plan.speakers)
    sr, stats = config.sample_rate, {}
    total = sum(map(len, plan.sessions.values()))
    with torch_threads(1), tqdm(total=total, desc="diar-mini", unit="session", disable=not progress) as bar:
        for s, split in enumerate(SPLITS):
            lines, rttm, uem, speech, overlap, seconds = [], [], [], 0, 0, 0.0
            for i, session in enumerate(plan.sessions[split]):
                audio, segments = _mix(session, render, config, np.random.default_rng([config.seed, 3, s, i]))
                wav, reference = Path("audio", split, f"{session.id}.wav"), Path("rttm", split, f"{session.id}.rttm")
                sf.write(corpus.root / wav, audio, sr, subtype="PCM_16")
                session_rttm = _rttm_lines(session, segments, sr)
                write_text_atomic(corpus.root / reference, "".join(session_rttm))
                rttm += session_rttm
                duration = audio.shape[0] / sr
                uem.append(f"{session.id} 1 0.000 {duration:.3f}\n")
                speakers = sorted({g.utterance.speaker for g in segments})  # those who got to speak
                lines.append({"audio_filepath": wav.as_posix(), "duration": round(duration, 3), "id": session.id,
                              "rttm_filepath": reference.as_posix(), "num_speakers": len(speakers),
                              "speakers": speakers})  # fmt: skip
                n_speech, n_overlap = speech_and_overlap(segments)
                speech, overlap, seconds = speech + n_speech, overlap + n_overlap, seconds + duration
                bar.update()
            write_text_atomic(corpus.rttm(split), "".join(rttm))
            write_text_atomic(corpus.uem(split), "".join(uem))
            write_text_atomic(corpus.manifest(split), "".join(json.dumps(line) + "\n" for line in lines))
            stats[split] = {
                "sessions": len(lines),
                "speakers": len({spk for line in lines for spk in line["speakers"]}),
                "duration_s": round(seconds, 3),
                "speech_s": round(speech / sr, 3),
                "overlap_fraction": round(overlap / max(speech, 1), 4),
                "turns": len(rttm),
                "num_speakers": {str(k): n for k, n in sorted(Counter(x["num_speakers"] for x in lines).items())},
            }
    meta = {"config_hash": digest, "config": asdict(config), "splits": stats,
            "speakers": [asdict(s) for s in plan.speakers]}  # fmt: skip
    write_text_atomic(corpus.meta, json.dumps(meta, indent=1) + "\n")
    write_text_atomic(corpus.root / MARKER, json.dumps({"config_hash": digest}) + "\n")
    (corpus.root / _IN_PROGRESS).unlink()
    return corpus
