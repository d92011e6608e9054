"""A small English speech corpus with cased, punctuated transcripts and German translations, spoken by espeak-ng.

Why: the offline ASR and English→German speech-translation quickstarts need speech whose text has real
casing and punctuation (so a raw WER can be reported beside the normalised one) and a German target, and
nothing can be downloaded. One corpus serves both: every utterance's manifest line carries the English
``text`` (exactly what espeak-ng was given; see ``nestbench.synth.bilingual_grammar`` for why the spoken
words are those of the text) and its German ``target_text``, rendered from the same derivation.

Sentences: drawn by ``bilingual_grammar`` and sized for a target speech length (``speech_s``, uniform) at
the utterance's speaking rate. No English and no German sentence occurs twice in the corpus, so dev and
test sentences are never seen in training. Splits are planned test first, then dev, then train, so the
held-out sentences do not change when only ``n_train`` does.

Speakers: identities as in ``nestbench.synth.voices`` (espeak voice variant, pitch, rate, vocal-tract
warp, spectral colouring), disjoint between splits. Voice variants are dealt to the splits as disjoint
pools: with the default 40 + 8 + 12 = 60 speakers (the number of usable variants) every speaker has its
own variant; a larger config shares variants *within* a split only (pools sized in proportion to the
speakers). What splits do share: espeak-ng's English phoneme rules and synthesiser, the ranges the
identities are drawn from, and the grammar's vocabulary. Each utterance adds pitch and rate jitter, a
random "channel" (tilt and one peaking band), white noise at a random SNR, a random level and short
leading/trailing silence. Speech is never cut: the transcript must match the audio.

Default sizes: 3000 train / 200 dev / 300 test utterances from 40 / 8 / 12 speakers: enough sentences for a
small model to learn the grammar's ~470 words, small enough to build on one core in about half a minute.
Measured (seed 0): built in 34 s on one busy core (33 s of CPU; the plan alone takes 1 s); 3.1 h of 16-bit
16 kHz audio (342 MB); files of 1.1-6.2 s (1-99 %: 1.5-5.2 s, mean 3.2 s); 471 English word types
(normalised; every dev and test word also occurs in train) and 640 German word forms; 54 distinct
characters in the English texts and 60 in the German ones.

Reproducibility: the plan (speakers, texts, nuisance draws) is a pure function of the config. Audio is too
in a fresh process; within one process espeak-ng's flutter state makes samples and lengths differ by a few
milliseconds between repeated builds (see ``nestbench.synth.espeak``).
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from nestbench.synth.bilingual_grammar import GRAMMAR_VERSION, derive_sized, english, german, spoken_words
from nestbench.synth.bilingual_lexicon import TABLES
from nestbench.synth.espeak import Voice, synthesize
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
_PLAN_ORDER = ("test", "dev", "train")  # held-out texts first: they do not depend on the train size
_FORMAT_VERSION = 1  # bump when the output changes in a way the config, grammar and tables do not capture
# espeak speaks this grammar's words about 1.16 times faster than its nominal words/min (measured, sd 13 %)
WORDS_PER_RATE_WORD = 1.16
_PEAK = 0.95  # a louder utterance is scaled down to this peak
_GERMAN_WORD = re.compile(r"[^\W\d_]+")
_MAX_TRIES = 1000  # fresh derivations tried for an utterance before the corpus is declared too large


@dataclass(frozen=True)
class SpeechTextMiniConfig:
    """Sizes, identity ranges and nuisance ranges of the corpus (see the module docstring for why).

    ``n_<split>``: utterances; ``n_<split>_speakers``: speakers (disjoint identities). ``speech_s``: the
    speech length each sentence is sized for (seconds, uniform; the real length varies by about 15 %).
    Identity ranges (``pitch_range`` … ``eq_gain_db``) and per-utterance nuisance (``pitch_jitter``,
    ``rate_jitter``, ``channel_*``, ``snr_db_range``, ``level_db_range``): as in
    ``nestbench.synth.sv_mini.SvMiniConfig``; ``silence_s`` bounds the leading and trailing silence.
    """

    n_train: int = 3000
    n_dev: int = 200
    n_test: int = 300
    n_train_speakers: int = 40
    n_dev_speakers: int = 8
    n_test_speakers: int = 12
    seed: int = 0
    sample_rate: int = 16000
    speech_s: tuple[float, float] = (1.2, 4.2)
    silence_s: tuple[float, float] = (0.05, 0.25)
    pitch_range: tuple[int, int] = (15, 85)
    rate_range: tuple[int, int] = (140, 200)
    warp_range: tuple[float, float] = (0.9, 1.1)
    tilt_db_per_octave: float = 2.0
    eq_gain_db: tuple[float, float] = (2.0, 6.0)
    pitch_jitter: int = 5
    rate_jitter: float = 0.08
    channel_tilt_db_per_octave: float = 1.0
    channel_eq_db: float = 3.0
    snr_db_range: tuple[float, float] = (15.0, 40.0)
    level_db_range: tuple[float, float] = (-30.0, -20.0)
    variants: tuple[str, ...] = ()  # the espeak voice variants speakers are dealt from (empty: all of VARIANTS)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.variants) - set(VARIANTS))
        if unknown:
            raise ValueError(f"variants {unknown} are not usable espeak voice variants (see nestbench.synth.voices)")
        for split in SPLITS:
            if self.n_utterances(split) < 1 or self.n_speakers(split) < 1:
                raise ValueError(f"n_{split} and n_{split}_speakers must each be >= 1")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0 (numpy SeedSequence), got {self.seed}")
        if self.sample_rate < 8000:
            raise ValueError(f"sample_rate must be >= 8000, got {self.sample_rate}")
        for name, low in (("speech_s", 0.5), ("silence_s", 0.0), ("snr_db_range", -10.0)):
            lo, hi = getattr(self, name)
            if not low <= lo <= hi:
                raise ValueError(f"{name} must be (lo, hi) with {low} <= lo <= hi, got {getattr(self, name)}")
        if self.pitch_range[0] - self.pitch_jitter < 0 or self.pitch_range[1] + self.pitch_jitter > 99:
            raise ValueError("pitch_range widened by pitch_jitter must stay within espeak's 0..99")
        if not 0.0 <= self.rate_jitter < 0.5:
            raise ValueError(f"rate_jitter must be in [0, 0.5), got {self.rate_jitter}")

    def n_utterances(self, split: str) -> int:
        return {"train": self.n_train, "dev": self.n_dev, "test": self.n_test}[split]

    def n_speakers(self, split: str) -> int:
        return {"train": self.n_train_speakers, "dev": self.n_dev_speakers, "test": self.n_test_speakers}[split]


@dataclass(frozen=True)
class Utterance:
    """One planned utterance: its texts, the espeak voice that speaks it and its nuisance draws."""

    id: str
    speaker: str
    text: str
    target_text: str
    voice: Voice
    channel_tilt_db_per_octave: float
    channel_band: Band
    snr_db: float
    level_db: float
    lead_s: float
    trail_s: float


@dataclass(frozen=True)
class SpeechTextMiniPlan:
    speakers: tuple[Speaker, ...]
    utterances: dict[str, tuple[Utterance, ...]]


@dataclass(frozen=True)
class SpeechTextMiniCorpus:
    """Where a finished corpus lives; manifests' ``audio_filepath`` values are relative to ``root``."""

    root: Path

    def manifest(self, split: str) -> Path:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
        return Path(self.root) / f"{split}.jsonl"

    @property
    def meta(self) -> Path:
        return Path(self.root) / "meta.json"


# ---------------------------------------------------------------------------------------------- plan


def _variant_pools(config: SpeechTextMiniConfig, rng: np.random.Generator) -> dict[str, tuple[str, ...]]:
    """Disjoint voice-variant pools per split: one variant per speaker when ``VARIANTS`` holds everyone,
    else pools in proportion to the speakers (at least one each; the rest to the largest split)."""
    counts = [config.n_speakers(split) for split in SPLITS]
    variants = config.variants or VARIANTS
    if len(variants) < len(SPLITS):
        raise ValueError("need at least one voice variant per split")
    if sum(counts) <= len(variants):
        sizes = counts
    else:
        sizes = [max(1, n * len(variants) // sum(counts)) for n in counts]
        sizes[int(np.argmax(counts))] += len(variants) - sum(sizes)
    order = [variants[int(i)] for i in rng.permutation(len(variants))]
    starts = np.cumsum([0, *sizes])
    return {split: tuple(order[starts[k] : starts[k + 1]]) for k, split in enumerate(SPLITS)}


def _speakers(config: SpeechTextMiniConfig) -> tuple[Speaker, ...]:
    drawn = draw_speakers([(s, config.n_speakers(s)) for s in SPLITS], config, np.random.default_rng([config.seed, 0]))
    pools = _variant_pools(config, np.random.default_rng([config.seed, 1]))
    speakers = []
    for split in SPLITS:
        ours = [s for s in drawn if s.split == split]
        speakers += [replace(s, variant=pools[split][k % len(pools[split])]) for k, s in enumerate(ours)]
    return tuple(speakers)


def _balanced(k: int, n: int, rng: np.random.Generator) -> list[int]:
    """``n`` indices into ``k`` speakers whose counts differ by at most one, in random order."""
    picks = np.concatenate([rng.permutation(k) for _ in range(-(-n // k))])[:n]
    rng.shuffle(picks)
    return [int(i) for i in picks]


def _split_utterances(
    split: str, speakers: list[Speaker], config: SpeechTextMiniConfig, rng: np.random.Generator, seen: set[str]
) -> tuple[Utterance, ...]:
    utterances = []
    for u, k in enumerate(_balanced(len(speakers), config.n_utterances(split), rng)):
        speaker = speakers[k]
        rate = speaker.rate * (1.0 + rng.uniform(-1, 1) * config.rate_jitter)
        pitch = speaker.pitch + int(rng.integers(-config.pitch_jitter, config.pitch_jitter + 1))
        n_words = max(1, round(rng.uniform(*config.speech_s) * rate / 60.0 * WORDS_PER_RATE_WORD))
        for _ in range(_MAX_TRIES):  # no English and no German sentence twice in the corpus
            sentence = derive_sized(rng, n_words)
            text, target = english(sentence), german(sentence)
            if text not in seen and target not in seen:
                break
        else:
            raise ValueError(f"could not find {_MAX_TRIES} fresh sentences of ~{n_words} words; corpus too large")
        seen.update((text, target))
        lead, trail = (round(float(x), 3) for x in rng.uniform(*config.silence_s, size=2))
        utterances.append(Utterance(
            id=f"{split}-{u:05d}", speaker=speaker.speaker, text=text, target_text=target,
            voice=espeak_voice(speaker, rate, pitch),
            channel_tilt_db_per_octave=round(float(rng.uniform(-1, 1) * config.channel_tilt_db_per_octave), 3),
            channel_band=random_band(rng, config.channel_eq_db),
            snr_db=round(float(rng.uniform(*config.snr_db_range)), 2),
            level_db=round(float(rng.uniform(*config.level_db_range)), 2),
            lead_s=lead, trail_s=trail,
        ))  # fmt: skip
    return tuple(utterances)


def plan_speech_text_mini(config: SpeechTextMiniConfig = SpeechTextMiniConfig()) -> SpeechTextMiniPlan:
    """The corpus without audio: speakers and utterances (texts, voice, nuisance); cheap (about a second)."""
    speakers = _speakers(config)
    seen: set[str] = set()
    utterances = {}
    for split in _PLAN_ORDER:
        ours = [s for s in speakers if s.split == split]
        rng = np.random.default_rng([config.seed, 2, SPLITS.index(split)])
        utterances[split] = _split_utterances(split, ours, config, rng, seen)
    return SpeechTextMiniPlan(speakers, {split: utterances[split] for split in SPLITS})


def config_hash(config: SpeechTextMiniConfig) -> str:
    """Digest of everything that shapes the output, so an edited word table also invalidates old corpora."""
    payload = {
        "config": asdict(config),
        "format": _FORMAT_VERSION,
        "grammar": GRAMMAR_VERSION,
        "tables": {name: repr(table) for name, table in TABLES.items()},
        "variants": VARIANTS,
        "constants": [WORDS_PER_RATE_WORD, _PEAK, SILENCE_DB, _PLAN_ORDER],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


# --------------------------------------------------------------------------------------------- audio


class _Renderer:
    """Speak a planned utterance in its speaker's identity, then add its nuisance; never cut the speech."""

    def __init__(self, config: SpeechTextMiniConfig) -> None:
        self.sample_rate = config.sample_rate
        self.identity = IdentityRenderer(config.sample_rate)

    def __call__(self, speaker: Speaker, utt: Utterance, rng: np.random.Generator) -> np.ndarray:
        sr = self.sample_rate
        native, _ = synthesize(utt.text, utt.voice)
        speech = self.identity(native, speaker, utt.channel_tilt_db_per_octave, (utt.channel_band,))
        speech *= np.float32(10.0 ** (utt.level_db / 20.0) / active_rms(speech, sr // 100))
        audio = np.concatenate([np.zeros(int(utt.lead_s * sr), np.float32), speech,
                                np.zeros(int(utt.trail_s * sr), np.float32)])  # fmt: skip
        noise_rms = 10.0 ** ((utt.level_db - utt.snr_db) / 20.0)
        audio += rng.standard_normal(audio.shape[0]).astype(np.float32) * np.float32(noise_rms)
        peak = float(np.abs(audio).max())
        if peak > _PEAK:
            audio *= np.float32(_PEAK / peak)
        return audio


# ---------------------------------------------------------------------------------------------- build


def _write_wav(path: Path, audio: np.ndarray, sample_rate: int) -> None:
    """16-bit PCM through memory: libsndfile fsyncs a file it closes, which took half the build time."""
    buffer = io.BytesIO()
    sf.write(buffer, audio, sample_rate, format="WAV", subtype="PCM_16")
    path.write_bytes(buffer.getvalue())


def _line(utt: Utterance, relative: Path, duration: float) -> dict:
    return {"audio_filepath": relative.as_posix(), "duration": round(duration, 4), "id": utt.id,
            "speaker": utt.speaker, "text": utt.text, "lang": "en", "target_text": utt.target_text,
            "source_lang": "en", "target_lang": "de"}  # fmt: skip


def _stats(lines: list[dict]) -> dict:
    durations = [line["duration"] for line in lines]
    return {
        "utterances": len(lines),
        "speakers": len({line["speaker"] for line in lines}),
        "duration_s": round(sum(durations), 2),
        "min_duration_s": min(durations),
        "max_duration_s": max(durations),
        "en_words": len({w for line in lines for w in spoken_words(line["text"])}),
        "de_words": len({w for line in lines for w in _GERMAN_WORD.findall(line["target_text"])}),
    }


def make_speech_text_mini(
    out_dir: str | Path, config: SpeechTextMiniConfig = SpeechTextMiniConfig(), *, progress: bool = True
) -> SpeechTextMiniCorpus:
    """Write the corpus under ``out_dir`` and return its paths.

    Layout: ``audio/<split>/<id>.wav`` (mono 16-bit PCM at ``config.sample_rate``), ``{train,dev,test}.jsonl``
    (one line per utterance: ``audio_filepath`` relative to ``out_dir``, ``duration``, ``id``, ``speaker``,
    ``text`` (English, cased and punctuated), ``lang`` "en", ``target_text`` (German), ``source_lang`` "en",
    ``target_lang`` "de") and ``meta.json`` (config, hash, per-split statistics, speaker identities).
    Idempotent: when ``.complete`` records the same config hash nothing is redone; an interrupted build
    (``.in_progress`` left behind) or another config's corpus is cleared and rebuilt.
    """
    corpus = SpeechTextMiniCorpus(Path(out_dir))
    digest = config_hash(config)
    if finished_hash(corpus.root) == digest:
        return corpus
    root = Path(corpus.root)
    claim(root, [corpus.manifest(s) for s in SPLITS] + [corpus.meta], [root / "audio" / s for s in SPLITS],
          "make_speech_text_mini")  # fmt: skip
    plan = plan_speech_text_mini(config)
    render = _Renderer(config)
    by_id = {s.speaker: s for s in plan.speakers}
    stats = {}
    total = sum(map(len, plan.utterances.values()))
    with torch_threads(1), tqdm(total=total, desc="speech-text-mini", unit="utt", disable=not progress) as bar:
        for s, split in enumerate(SPLITS):
            lines = []
            for u, utt in enumerate(plan.utterances[split]):
                audio = render(by_id[utt.speaker], utt, np.random.default_rng([config.seed, 3, s, u]))
                relative = Path("audio", split, f"{utt.id}.wav")
                _write_wav(root / relative, audio, config.sample_rate)
                lines.append(_line(utt, relative, audio.shape[0] / config.sample_rate))
                bar.update()
            write_text_atomic(corpus.manifest(split), "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines))
            stats[split] = _stats(lines)
    meta = {"config_hash": digest, "config": asdict(config), "splits": stats,
            "speakers": [asdict(s) for s in plan.speakers]}  # fmt: skip
    write_text_atomic(corpus.meta, json.dumps(meta, indent=1) + "\n")
    write_text_atomic(root / MARKER, json.dumps({"config_hash": digest}) + "\n")
    (root / _IN_PROGRESS).unlink()
    return corpus
