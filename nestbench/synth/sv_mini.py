"""A small speaker-verification corpus spoken by espeak-ng, for offline SV experiments and tests.

Why: speaker verification needs many *speakers*, not many sentences, and no SV corpus can be downloaded
offline. This writes a VoxCeleb-style evaluation setup (NeMo manifests with a ``speaker`` field and
``1|0 <enroll> <test>`` trial lists) from synthetic speakers whose identities are distinct enough for a
small embedding model to learn, yet not separable by the long-term spectrum alone.

A speaker's identity (drawn and rendered by ``nestbench.synth.voices``) is fixed for all of its utterances:

* an espeak voice variant (``en+m3``, ``en+f2``, ``en+Henrique`` …; ``VARIANTS`` lists the ones that sound
  like a person: no robots, whispers, echoes or clipping), espeak pitch (0-99) and speaking rate (words/min);
* a vocal-tract-length warp: the native audio is re-interpreted at ``warp`` times its rate and resampled,
  which scales formants *and* F0 by ``warp`` (as a longer or shorter vocal tract would, roughly); espeak's
  rate is divided by ``warp`` first so the speaker's speaking rate is kept;
* a spectral colouring: a tilt in dB/octave around 1 kHz plus one or two peaking bands (Gaussian on a
  log-frequency axis), applied as one zero-phase FFT filter.

Every utterance adds nuisance: its own text (no sentence occurs twice in the corpus), pitch and rate
jitter around the speaker's values, a random "channel" (a small extra tilt and one weak peaking band),
white noise at a random SNR, a random level, and random leading/trailing silence.

Splits hold disjoint speakers (speaker ids and identity parameters differ), but voice variants *are*
shared between splits: with ~60 usable variants and 76 speakers, and since two speakers on one variant
differ only in pitch, rate, warp and colouring, held-out trials include same-variant non-targets. That
is harder than disjoint variants and closer to real data, where unseen speakers resemble seen ones.

Default sizes: 48 train speakers × 10 utterances (enough classes for AAM-softmax to learn a speaker space
rather than a few prototypes, small enough to synthesise in well under a minute on two cores), 12 dev
and 16 test speakers (≥ 40 speakers overall, 1,000 / 1,400 balanced trials from 540 / 720 possible
target pairs). Measured on the defaults (seeds 0 and 1): the mean-log-mel cosine baseline
(``nestbench.metrics.baselines``) scores 23-29 % EER on dev and test, while a three-layer TDNN with
AAM-softmax trained on the train split for about a minute on one CPU thread reaches 2-6 %.

Reproducibility: the plan (speakers, texts, trials, nuisance draws) is a pure function of the config.
Audio is too in a fresh process; within one process espeak-ng's flutter state makes samples and lengths
differ by a few milliseconds between repeated builds (see ``nestbench.synth.espeak``).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
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
    random_band,
)

from ..fileio import write_text_atomic
from ..threads import torch_threads
from .markers import IN_PROGRESS as _IN_PROGRESS
from .markers import MARKER, claim, finished_hash

SPLITS = ("train", "dev", "test")
_FORMAT_VERSION = 1  # bump when the output changes in a way the config and inventories do not capture


@dataclass(frozen=True)
class SvMiniConfig:
    """Sizes, identity ranges and nuisance ranges of the corpus (see the module docstring for why).

    Identity (fixed per speaker): ``pitch_range`` (espeak 0-99), ``rate_range`` (words/min), ``warp_range``
    (vocal-tract-length factor, rounded so the warped rate is a multiple of 100 Hz: steps of 0.45 %),
    ``tilt_db_per_octave`` (|tilt| bound), ``eq_gain_db`` (|gain| range of the one or two peaking bands,
    centred at 300-5000 Hz, 0.3-1 octave wide). Nuisance (per utterance): ``pitch_jitter`` (espeak units,
    ±), ``rate_jitter`` (fraction, ±), ``channel_tilt_db_per_octave`` and ``channel_eq_db`` (|bound| of a
    random extra tilt and peaking band), ``snr_db_range`` (white noise vs speech RMS), ``level_db_range``
    (speech RMS in dBFS). ``duration_range`` bounds each file in seconds;
    the text is sized so the speech fits and silence pads it up to the minimum.
    """

    n_train_speakers: int = 48
    n_dev_speakers: int = 12
    n_test_speakers: int = 16
    utterances_per_speaker: int = 10
    n_dev_trials: int = 1000
    n_test_trials: int = 1400
    seed: int = 0
    sample_rate: int = 16000
    duration_range: tuple[float, float] = (2.0, 5.0)
    pitch_range: tuple[int, int] = (15, 85)
    rate_range: tuple[int, int] = (140, 210)
    warp_range: tuple[float, float] = (0.88, 1.12)
    tilt_db_per_octave: float = 2.0
    eq_gain_db: tuple[float, float] = (3.0, 8.0)
    pitch_jitter: int = 5
    rate_jitter: float = 0.08
    channel_tilt_db_per_octave: float = 1.0
    channel_eq_db: float = 4.0
    snr_db_range: tuple[float, float] = (20.0, 40.0)
    level_db_range: tuple[float, float] = (-30.0, -22.0)

    def __post_init__(self) -> None:
        if min(self.n_train_speakers, self.n_dev_speakers, self.n_test_speakers) < 2:
            raise ValueError("n_train_speakers, n_dev_speakers and n_test_speakers must each be >= 2")
        if self.utterances_per_speaker < 2:
            raise ValueError(f"utterances_per_speaker must be >= 2, got {self.utterances_per_speaker}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0 (numpy SeedSequence), got {self.seed}")
        if self.sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {self.sample_rate}")
        lo, hi = self.duration_range
        if not 0.5 <= lo < hi or hi - lo < 1.0:
            raise ValueError(
                f"duration_range must be (lo, hi) with 0.5 <= lo and hi - lo >= 1 s, got {self.duration_range}"
            )
        if self.pitch_range[0] - self.pitch_jitter < 0 or self.pitch_range[1] + self.pitch_jitter > 99:
            raise ValueError("pitch_range widened by pitch_jitter must stay within espeak's 0..99")
        for split in ("dev", "test"):
            n, speakers = self.n_trials(split), self.n_speakers(split)
            targets = speakers * math.comb(self.utterances_per_speaker, 2)
            if n <= 0 or n % 2 or n // 2 > targets:
                raise ValueError(
                    f"n_{split}_trials must be even, positive and at most 2 x {targets} (the {split} split's "
                    f"same-speaker pairs), got {n}"
                )

    def n_speakers(self, split: str) -> int:
        return {"train": self.n_train_speakers, "dev": self.n_dev_speakers, "test": self.n_test_speakers}[split]

    def n_trials(self, split: str) -> int:
        return {"dev": self.n_dev_trials, "test": self.n_test_trials}[split]


@dataclass(frozen=True)
class Utterance:
    """One planned utterance: its text, the espeak voice that speaks it and its nuisance draws."""

    id: str
    speaker: str
    text: str
    voice: Voice
    channel_tilt_db_per_octave: float
    channel_band: Band
    snr_db: float
    level_db: float
    lead_s: float
    trail_s: float


@dataclass(frozen=True)
class SvMiniPlan:
    speakers: tuple[Speaker, ...]
    utterances: dict[str, tuple[Utterance, ...]]
    trials: dict[str, tuple[tuple[int, str, str], ...]]  # dev/test -> (label, enroll id, test id)


@dataclass(frozen=True)
class SvMiniCorpus:
    """Where a finished corpus lives; manifests' ``audio_filepath`` values are relative to ``root``."""

    root: Path
    train_manifest: Path
    dev_manifest: Path
    test_manifest: Path
    dev_trials: Path
    test_trials: Path
    speakers: Path

    @classmethod
    def at(cls, root: str | Path) -> SvMiniCorpus:
        root = Path(root)
        return cls(root, *(root / f"{s}.jsonl" for s in SPLITS), root / "dev_trials.txt",
                   root / "test_trials.txt", root / "speakers.json")  # fmt: skip

    def manifest(self, split: str) -> Path:
        return {"train": self.train_manifest, "dev": self.dev_manifest, "test": self.test_manifest}[split]

    def trials(self, split: str) -> Path:
        return {"dev": self.dev_trials, "test": self.test_trials}[split]


def read_trials(path: str | Path) -> list[tuple[int, str, str]]:
    """A VoxCeleb-format trial list as ``(label, enroll id, test id)`` tuples."""
    trials = []
    for line in Path(path).read_text().splitlines():
        label, enroll, test = line.split()
        trials.append((int(label), enroll, test))
    return trials


# ---------------------------------------------------------------------------------------------- plan


def _utterances(speaker: Speaker, config: SvMiniConfig, rng: np.random.Generator, texts: set[str]) -> list[Utterance]:
    lo, hi = config.duration_range
    utterances = []
    for u in range(config.utterances_per_speaker):
        rate = speaker.rate * (1.0 + rng.uniform(-1, 1) * config.rate_jitter)
        lead, trail = (round(float(x), 3) for x in rng.uniform(0.05, 0.25, size=2))
        speech_s = rng.uniform(lo - 0.1, hi - 1.0)  # headroom for silence and the text-length error
        n_words = n_words_for(speech_s, rate)
        text = sentence(n_words, rng)
        while text in texts:  # no sentence twice in the corpus
            text = sentence(n_words, rng)
        texts.add(text)
        pitch = speaker.pitch + int(rng.integers(-config.pitch_jitter, config.pitch_jitter + 1))
        utterances.append(Utterance(
            id=f"{speaker.speaker}-{u:03d}", speaker=speaker.speaker, text=text,
            voice=espeak_voice(speaker, rate, pitch),
            channel_tilt_db_per_octave=round(float(rng.uniform(-1, 1) * config.channel_tilt_db_per_octave), 3),
            channel_band=random_band(rng, config.channel_eq_db),
            snr_db=round(float(rng.uniform(*config.snr_db_range)), 2),
            level_db=round(float(rng.uniform(*config.level_db_range)), 2),
            lead_s=lead, trail_s=trail,
        ))  # fmt: skip
    return utterances


def _trials(utterances: tuple[Utterance, ...], n: int, rng: np.random.Generator) -> tuple[tuple[int, str, str], ...]:
    """``n / 2`` same-speaker and ``n / 2`` different-speaker pairs, each unordered pair at most once."""
    pairs = list(itertools.combinations(range(len(utterances)), 2))
    same = [(i, j) for i, j in pairs if utterances[i].speaker == utterances[j].speaker]
    different = [(i, j) for i, j in pairs if utterances[i].speaker != utterances[j].speaker]
    trials = []
    for label, pool in ((1, same), (0, different)):
        for k in sorted(rng.choice(len(pool), size=n // 2, replace=False)):
            i, j = pool[int(k)]
            if rng.random() < 0.5:  # which side enrols is random, as in VoxCeleb's lists
                i, j = j, i
            trials.append((label, utterances[i].id, utterances[j].id))
    return tuple(sorted(trials, key=lambda t: (t[1], t[2])))


def plan_sv_mini(config: SvMiniConfig = SvMiniConfig()) -> SvMiniPlan:
    """The corpus without audio: speakers, utterances (text, voice, nuisance) and trials; cheap."""
    counts = [(split, config.n_speakers(split)) for split in SPLITS]
    speakers = draw_speakers(counts, config, np.random.default_rng([config.seed, 0]))
    texts: set[str] = set()
    utterances = {
        split: tuple(
            u
            for k, speaker in enumerate(speakers)
            if speaker.split == split
            for u in _utterances(speaker, config, np.random.default_rng([config.seed, 1, k]), texts)
        )
        for split in SPLITS
    }
    trials = {
        split: _trials(utterances[split], config.n_trials(split), np.random.default_rng([config.seed, 2, s]))
        for s, split in enumerate(SPLITS)
        if split != "train"
    }
    return SvMiniPlan(speakers, utterances, trials)


def config_hash(config: SvMiniConfig) -> str:
    """Digest of everything that shapes the output, so a changed inventory also invalidates old corpora."""
    payload = {
        "config": asdict(config),
        "format": _FORMAT_VERSION,
        "inventory": [VARIANTS, *INVENTORY],
        "constants": [WORDS_PER_RATE_WORD, MIN_CLAUSE, _PEAK, SILENCE_DB],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


# --------------------------------------------------------------------------------------------- audio

_PEAK = 0.95  # a louder mix is scaled down to this peak


class _Renderer:
    """Speak a planned utterance in its speaker's identity, then add its nuisance."""

    def __init__(self, config: SvMiniConfig) -> None:
        self.config = config
        self.identity = IdentityRenderer(config.sample_rate)

    def __call__(self, speaker: Speaker, utt: Utterance, rng: np.random.Generator) -> tuple[np.ndarray, int]:
        """float32 samples and how many of them are speech cut off by the maximum duration (normally 0)."""
        sr = self.config.sample_rate
        frame = sr // 100
        native, _ = synthesize(utt.text, utt.voice)
        speech = self.identity(native, speaker, utt.channel_tilt_db_per_octave, (utt.channel_band,))
        speech *= np.float32(10.0 ** (utt.level_db / 20.0) / active_rms(speech, frame))
        lo, hi = self.config.duration_range
        lead, trail = int(utt.lead_s * sr), int(utt.trail_s * sr)
        trail += max(0, int(math.ceil(lo * sr)) - (lead + speech.shape[0] + trail))
        audio = np.concatenate([np.zeros(lead, np.float32), speech, np.zeros(trail, np.float32)])
        cut = max(0, audio.shape[0] - int(hi * sr))
        if cut:
            audio = audio[: int(hi * sr)]
            audio[-frame:] *= np.linspace(1.0, 0.0, frame, dtype=np.float32)
        noise_rms = 10.0 ** ((utt.level_db - utt.snr_db) / 20.0)
        audio = audio + rng.standard_normal(audio.shape[0]).astype(np.float32) * np.float32(noise_rms)
        peak = float(np.abs(audio).max())
        if peak > _PEAK:
            audio *= np.float32(_PEAK / peak)
        return audio, max(0, cut - trail)


# ---------------------------------------------------------------------------------------------- build


def make_sv_mini(out_dir: str | Path, config: SvMiniConfig = SvMiniConfig(), *, progress: bool = True) -> SvMiniCorpus:
    """Write the corpus under ``out_dir`` and return its paths.

    Layout: ``audio/<speaker>/<id>.flac`` (mono, ``config.sample_rate``), ``{train,dev,test}.jsonl``
    (``audio_filepath`` relative to ``out_dir``, ``duration``, ``id``, ``speaker``, ``text``),
    ``{dev,test}_trials.txt`` (``1|0 <enroll id> <test id>``) and ``speakers.json``. Idempotent: when
    ``.complete`` records the same config hash nothing is redone; an interrupted build (``.in_progress``
    left behind) or another config's corpus is cleared and rebuilt.
    """
    corpus = SvMiniCorpus.at(out_dir)
    digest = config_hash(config)
    if finished_hash(corpus.root) == digest:
        return corpus
    audio_dir = corpus.root / "audio"
    written = [corpus.manifest(s) for s in SPLITS] + [corpus.dev_trials, corpus.test_trials, corpus.speakers]
    claim(corpus.root, written, [audio_dir], "make_sv_mini")
    plan = plan_sv_mini(config)
    render = _Renderer(config)
    by_id = {s.speaker: s for s in plan.speakers}
    total, truncated = sum(map(len, plan.utterances.values())), 0
    with torch_threads(1), tqdm(total=total, desc="sv-mini", unit="utt", disable=not progress) as bar:
        for s, split in enumerate(SPLITS):
            lines = []
            for u, utt in enumerate(plan.utterances[split]):
                audio, cut = render(by_id[utt.speaker], utt, np.random.default_rng([config.seed, 3, s, u]))
                truncated += cut > 0
                relative = Path("audio", utt.speaker, f"{utt.id}.flac")
                (audio_dir / utt.speaker).mkdir(exist_ok=True)
                sf.write(corpus.root / relative, audio, config.sample_rate, format="FLAC", subtype="PCM_16")
                duration = round(audio.shape[0] / config.sample_rate, 4)
                lines.append({"audio_filepath": relative.as_posix(), "duration": duration, "id": utt.id,
                              "speaker": utt.speaker, "text": utt.text})  # fmt: skip
                bar.update()
            write_text_atomic(corpus.manifest(split), "".join(json.dumps(line) + "\n" for line in lines))
    for split, trials in plan.trials.items():
        write_text_atomic(corpus.trials(split), "".join(f"{label} {a} {b}\n" for label, a, b in trials))
    speakers = {"config_hash": digest, "speakers": [asdict(s) for s in plan.speakers]}
    write_text_atomic(corpus.speakers, json.dumps(speakers, indent=1) + "\n")
    counts = {split: len(utts) for split, utts in plan.utterances.items()}
    marker = {"config_hash": digest, "config": asdict(config), "counts": counts, "truncated": truncated}
    write_text_atomic(corpus.root / MARKER, json.dumps(marker) + "\n")
    (corpus.root / _IN_PROGRESS).unlink()
    return corpus
