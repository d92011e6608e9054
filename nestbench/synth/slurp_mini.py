"""A small SLURP-format corpus spoken by espeak-ng, for the offline SLU quickstart.

Why: the quickstart must train and score an intent + slot model without downloading SLURP, yet go through
the *same* preparation recipe and official-format scorer as the real corpus. So this writes exactly the
SLURP release layout (``dataset/slurp/{train,devel,test}.jsonl`` and ``audio/slurp_real/*.flac``) and the
release's line conventions, studied on the real ``devel.jsonl``:

* keys ``slurp_id, sentence, sentence_annotation, intent, action, tokens, scenario, recordings, entities``
  in that order; ``intent`` is ``<scenario>_<action>``, split at the first underscore (``iot_hue_lightoff``);
* ``tokens`` are ``{"surface", "id", "lemma", "pos"}``; every word here is plain lower-case ascii, so the
  tokens are exactly ``sentence.split()`` (real SLURP splits clitics such as ``'s``; we use none);
* ``entities`` are ``{"span": [token ids], "type"}`` in sentence order; the official scorer rebuilds each
  filler as the span's surfaces joined by one space, and recipes parse ``[type : filler]`` from
  ``sentence_annotation``, so both are generated from one token list and always agree;
* one close-talk recording per sentence, ``audio-<number>-headset.flac`` (the far-field twin would be the
  same name without ``-headset``; none is made), with ``wer`` 0.0, ``ent_wer`` 0.0 (``null`` when the
  sentence has no entity, as in the release), ``status`` "correct" and an extra ``speaker`` field.

Speakers are (espeak voice variant, pitch, rate) identities, disjoint between splits (and so are the voice
variants and pitches), so test accuracy measures generalisation to unseen voices. Intents are balanced per
split; every fourth filler of each slot type is held out of train, so devel/test also hold unseen fillers.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from nestbench.synth.espeak import NATIVE_SAMPLE_RATE, Voice, synthesize

from ..fileio import write_text_atomic
from ..threads import torch_threads
from .markers import IN_PROGRESS as _IN_PROGRESS
from .markers import MARKER, claim, finished_hash

SPLITS = ("train", "devel", "test")
_FORMAT_VERSION = 1  # bump when the output changes in a way the inventory tables below do not capture
_FIRST_AUDIO_NUMBER = 1_600_000_000  # real recording numbers look like unix times (1434527192..1506522210)
_PREFIXES = ("olly", "hey olly")  # SLURP's wake word; prepended to some sentences so positions vary
_PREFIX_PROBABILITY = 0.2
_HOLD_OUT_EVERY = 4  # filler i is unseen in train when i % 4 == 3
_PEAK = 0.9  # louder utterances are scaled down to this peak before noise is added

# intent -> templates; ``{slot_type}`` marks a slot. Words and fillers: lower-case letters and spaces only.
TEMPLATES: dict[str, tuple[str, ...]] = {
    "alarm_set": (
        "wake me up at {time} {date}",
        "set an alarm for {time}",
        "set an alarm for {time} {date}",
        "i need an alarm at {time}",
        "please wake me at {time}",
    ),
    "alarm_remove": (
        "cancel my alarm for {time}",
        "remove the alarm at {time} {date}",
        "delete my {time} alarm",
        "turn off the alarm for {date}",
        "i do not need the {time} alarm anymore",
    ),
    "weather_query": (
        "what is the weather like in {place_name} {date}",
        "is it going to be {weather_descriptor} {date}",
        "will it be {weather_descriptor} in {place_name}",
        "tell me the forecast for {place_name}",
        "how is the weather looking {date}",
    ),
    "play_music": (
        "play {song_name} by {artist_name}",
        "play some {music_genre}",
        "i want to hear {artist_name}",
        "put on some {music_genre} music",
        "play the song {song_name}",
    ),
    "play_radio": (
        "play {radio_name}",
        "tune in to {radio_name}",
        "put on {radio_name} for me",
        "i want to listen to the radio station {radio_name}",
        "switch the radio to {radio_name}",
    ),
    "calendar_set": (
        "add my {event_name} to the calendar {date}",
        "schedule the {event_name} for {date} at {time}",
        "put {event_name} with {person} in my calendar",
        "remind me about the {event_name} {date}",
        "create a calendar event for {event_name} at {time}",
    ),
    "calendar_query": (
        "what is on my calendar {date}",
        "when is my {event_name}",
        "do i have any meetings {date}",
        "what do i have planned {date}",
        "am i free {date} at {time}",
    ),
    "iot_hue_lightoff": (
        "turn off the lights in the {house_place}",
        "switch off the {house_place} lights",
        "lights off in the {house_place}",
        "shut the lights in the {house_place}",
        "make the {house_place} dark",
    ),
    "iot_hue_lighton": (
        "turn on the lights in the {house_place}",
        "switch on the {house_place} lights",
        "lights on in the {house_place}",
        "i need some light in the {house_place}",
        "put the {house_place} lights on",
    ),
    "iot_coffee": (
        "make me a {coffee_type}",
        "i would like a {coffee_type} please",
        "start the coffee machine",
        "brew me a cup of coffee",
        "can i have a {coffee_type}",
    ),
    "email_sendemail": (
        "send an email to {person}",
        "email {person} about the {event_name}",
        "write to {person} that i will be late",
        "compose a new email for {person}",
        "send {person} a message by email",
    ),
    "email_query": (
        "do i have any new emails",
        "check my emails from {person}",
        "did {person} send me an email {date}",
        "read my latest emails",
        "are there any emails from {person}",
    ),
    "transport_ticket": (
        "book a {transport_type} ticket to {place_name}",
        "buy me a {transport_type} ticket to {place_name} for {date}",
        "i need a ticket to {place_name} {date}",
        "get me a {transport_type} ticket for {date}",
        "reserve a seat on the {transport_type} to {place_name}",
    ),
    "transport_taxi": (
        "call me a taxi to {place_name}",
        "book a taxi for {time}",
        "i need a cab to {place_name} at {time}",
        "get me a taxi {date} at {time}",
        "order a cab to take me to {place_name}",
    ),
    "cooking_recipe": (
        "how do i make {food_type}",
        "give me a recipe for {food_type}",
        "find me a good {food_type} recipe",
        "what do i need to cook {food_type}",
        "show me how to cook {food_type}",
    ),
    "datetime_query": (
        "what time is it in {place_name}",
        "tell me the current time in {place_name}",
        "what is the date {date}",
        "what time is it now",
        "which time zone is {place_name} in",
    ),
    "lists_createoradd": (
        "add eggs to my {list_name} list",
        "create a new {list_name} list",
        "put bread on the {list_name} list",
        "start a {list_name} list for me",
        "add milk to the {list_name} list",
    ),
    "lists_query": (
        "what is on my {list_name} list",
        "read me my {list_name} list",
        "show me the {list_name} list",
        "what lists do i have",
        "check my {list_name} list",
    ),
    "news_query": (
        "what is the latest news about {news_topic}",
        "tell me the {news_topic} news",
        "any news on {news_topic} today",
        "give me the headlines",
        "what is happening in {news_topic}",
    ),
    "audio_volume_up": (
        "turn the volume up",
        "make it louder",
        "increase the volume",
        "volume up please",
        "turn it up a bit",
    ),
    "audio_volume_mute": (
        "mute the speakers",
        "be quiet",
        "turn the sound off",
        "mute yourself",
        "silence please",
    ),
    "qa_definition": (
        "what does {definition_word} mean",
        "define {definition_word}",
        "what is the meaning of {definition_word}",
        "give me the definition of {definition_word}",
        "how do you define {definition_word}",
    ),
    "takeaway_order": (
        "order {food_type} from {business_name}",
        "i want to order some {food_type}",
        "get me a {food_type} takeaway",
        "order me {food_type} for delivery",
        "can you place an order at {business_name}",
    ),
    "general_joke": (
        "tell me a joke",
        "tell me a {joke_type} joke",
        "make me laugh",
        "do you know any {joke_type} jokes",
        "i want to hear a joke",
    ),
}

# SLURP entity type -> fillers. Every fourth one (index % 4 == 3) never occurs in train.
FILLERS: dict[str, tuple[str, ...]] = {
    "time": (
        "five am", "six thirty", "seven am", "noon", "eight fifteen", "nine pm", "ten thirty", "midnight",
        "half past six", "eleven am", "two pm", "quarter to eight", "four thirty pm", "seven forty five",
    ),
    "date": (
        "tomorrow", "today", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday",
        "sunday", "next week", "this weekend", "the first of may", "the day after tomorrow", "next friday",
    ),
    "place_name": (
        "london", "paris", "new york", "tokyo", "berlin", "edinburgh", "madrid", "sydney",
        "chicago", "rome", "dublin", "boston", "toronto", "glasgow", "lisbon", "vienna",
    ),
    "weather_descriptor": ("sunny", "rainy", "windy", "cold", "warm", "foggy", "snowy", "humid"),
    "artist_name": (
        "adele", "the beatles", "queen", "madonna", "coldplay", "bob dylan", "taylor swift", "elton john",
        "abba", "david bowie", "bruno mars", "shakira",
    ),
    "song_name": (
        "yesterday", "hey jude", "let it be", "bohemian rhapsody", "hello", "imagine", "yellow", "thriller",
        "wonderwall", "dancing queen", "purple rain", "hotel california",
    ),
    "music_genre": (
        "jazz", "rock", "classical", "pop", "hip hop", "blues", "country", "reggae",
        "techno", "folk", "soul", "metal",
    ),
    "radio_name": (
        "radio one", "radio two", "jazz fm", "classic fm", "kiss fm", "radio four", "capital radio",
        "heart radio", "smooth radio", "magic radio", "absolute radio", "talk sport",
    ),
    "event_name": (
        "meeting", "dentist appointment", "team lunch", "doctor appointment", "birthday party", "yoga class",
        "conference call", "dinner", "haircut", "football practice", "interview", "book club",
    ),
    "person": (
        "john", "sarah", "mike", "emma", "david", "lisa", "tom", "anna",
        "peter", "julia", "james", "kate",
    ),
    "house_place": (
        "kitchen", "bedroom", "living room", "bathroom", "hallway", "garage", "office", "dining room",
        "basement", "garden", "study", "nursery",
    ),
    "coffee_type": ("latte", "cappuccino", "espresso", "americano", "flat white", "mocha", "black coffee", "macchiato"),
    "transport_type": ("train", "bus", "plane", "coach", "ferry", "tram", "flight", "boat"),
    "food_type": (
        "pizza", "sushi", "curry", "pasta", "lasagne", "pancakes", "chicken soup", "chili",
        "noodles", "burgers", "risotto", "tacos", "fried rice", "apple pie", "omelette", "paella",
    ),
    "list_name": ("shopping", "grocery", "to do", "holiday", "packing", "christmas", "birthday", "work"),
    "news_topic": (
        "politics", "sports", "technology", "the economy", "science", "the election", "football", "business",
        "health", "the stock market", "climate change", "entertainment",
    ),
    "definition_word": (
        "serendipity", "ubiquitous", "ephemeral", "pragmatic", "eloquent", "resilient", "ambiguous", "meticulous",
        "benevolent", "nostalgia", "paradox", "candid",
    ),
    "business_name": (
        "pizza hut", "dominos", "mcdonalds", "burger king", "nandos", "subway", "wagamama", "pizza express",
    ),
    "joke_type": ("funny", "knock knock", "dad", "silly", "short", "science", "animal", "christmas"),
}  # fmt: skip


def _speakers(variants: tuple[str, ...], pitches: tuple[int, ...], rates: tuple[int, ...]) -> tuple[Voice, ...]:
    """Every (variant, pitch) pair, with the speaking rate rotating so it does not track the variant."""
    return tuple(
        Voice(f"en+{variant}", rate=rates[(v + p) % len(rates)], pitch=pitch)
        for v, variant in enumerate(variants)
        for p, pitch in enumerate(pitches)
    )


# split -> speakers; variants, pitches and hence speaker identities differ between splits.
SPEAKERS: dict[str, tuple[Voice, ...]] = {
    "train": _speakers(("m1", "m2", "m3", "m4", "f1", "f2", "f3"), (35, 50, 65), (150, 175, 200)),
    "devel": _speakers(("m5", "m6", "f4"), (42, 58), (160, 190)),
    "test": _speakers(("m7", "m8", "f5"), (42, 58), (160, 190)),
}


def speaker_id(voice: Voice) -> str:
    """A readable identity for a speaker, e.g. ``m1_p35_r150``."""
    return f"{voice.name.removeprefix('en+')}_p{voice.pitch}_r{voice.rate}"


@dataclass(frozen=True)
class MiniSlurpConfig:
    """Size and randomness of the corpus; ``noise_db`` is white-noise level relative to the speech RMS."""

    n_train: int = 720
    n_devel: int = 160
    n_test: int = 240
    seed: int = 0
    sample_rate: int = 16000
    noise_db: float = -30.0
    # voice perturbation of training utterances only (as speed perturbation in ASR): each one is spoken
    # with its speaker's pitch moved by up to +-pitch_jitter and rate scaled by up to +-rate_jitter
    pitch_jitter: int = 0
    rate_jitter: float = 0.0

    def __post_init__(self) -> None:
        if min(self.n_train, self.n_devel, self.n_test) < 0:
            raise ValueError("n_train, n_devel and n_test must be >= 0")
        if self.sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {self.sample_rate}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0 (numpy SeedSequence), got {self.seed}")
        if not (0 <= self.pitch_jitter <= 30 and 0.0 <= self.rate_jitter < 0.5):
            raise ValueError(
                f"pitch_jitter must be in 0..30 and rate_jitter in [0, 0.5), "
                f"got {self.pitch_jitter} and {self.rate_jitter}"
            )

    def size(self, split: str) -> int:
        return {"train": self.n_train, "devel": self.n_devel, "test": self.n_test}[split]


_SLOT = re.compile(r"\{(\w+)\}")


def scenario_action(intent: str) -> tuple[str, str]:
    """SLURP's split of an intent: scenario before the first underscore, action after it."""
    scenario, _, action = intent.partition("_")
    return scenario, action


def _fillers_for(slot_type: str, split: str) -> tuple[str, ...]:
    fillers = FILLERS[slot_type]
    if split != "train":
        return fillers
    return tuple(f for i, f in enumerate(fillers) if i % _HOLD_OUT_EVERY != _HOLD_OUT_EVERY - 1)


def _render(template: str, split: str, rng: np.random.Generator) -> tuple[list[str], list[tuple[str, int, int]]]:
    """Fill a template: its words and its entities as (type, first token, one past the last token)."""
    words: list[str] = []
    if rng.random() < _PREFIX_PROBABILITY:
        words += _PREFIXES[int(rng.integers(len(_PREFIXES)))].split()
    entities: list[tuple[str, int, int]] = []
    used: set[str] = set()  # a type used twice in one template gets two different fillers
    for i, piece in enumerate(_SLOT.split(template)):  # odd pieces are slot types, even ones literal text
        if i % 2 == 0:
            words += piece.split()
            continue
        choices = [f for f in _fillers_for(piece, split) if f not in used]
        filler = choices[int(rng.integers(len(choices)))]
        used.add(filler)
        start = len(words)
        words += filler.split()
        entities.append((piece, start, len(words)))
    return words, entities


def _annotate(words: list[str], entities: list[tuple[str, int, int]]) -> str:
    """SLURP's ``sentence_annotation``: the sentence with each entity as ``[type : filler]``."""
    pieces: list[str] = []
    cursor = 0
    for slot_type, start, end in entities:
        pieces += words[cursor:start]
        pieces.append(f"[{slot_type} : {' '.join(words[start:end])}]")
        cursor = end
    return " ".join(pieces + words[cursor:])


def _line(
    slurp_id: int, intent: str, words: list[str], entities: list[tuple[str, int, int]], file: str, speaker: str
) -> dict:
    """One jsonl record with the real release's keys, key order and value conventions."""
    scenario, action = scenario_action(intent)
    recording = {"file": file, "wer": 0.0, "ent_wer": 0.0 if entities else None, "status": "correct"}
    return {
        "slurp_id": slurp_id,
        "sentence": " ".join(words),
        "sentence_annotation": _annotate(words, entities),
        "intent": intent,
        "action": action,
        "tokens": [{"surface": w, "id": i, "lemma": w.lower(), "pos": "X"} for i, w in enumerate(words)],
        "scenario": scenario,
        "recordings": [{**recording, "speaker": speaker}],
        "entities": [{"span": list(range(start, end)), "type": slot_type} for slot_type, start, end in entities],
    }


def _balanced(k: int, n: int, rng: np.random.Generator) -> list[int]:
    """``n`` indices into ``k`` classes whose counts differ by at most one, in random order."""
    if n == 0:
        return []
    picks = np.concatenate([rng.permutation(k) for _ in range(-(-n // k))])[:n]
    rng.shuffle(picks)
    return [int(i) for i in picks]


def plan_mini_slurp(config: MiniSlurpConfig = MiniSlurpConfig()) -> dict[str, list[tuple[dict, Voice]]]:
    """The corpus text: split -> (jsonl record, voice to speak it) pairs; cheap, no audio involved."""
    intents = sorted(TEMPLATES)
    plan: dict[str, list[tuple[dict, Voice]]] = {}
    slurp_id = 0
    for s, split in enumerate(SPLITS):
        rng = np.random.default_rng([config.seed, s])
        n = config.size(split)
        speakers = SPEAKERS[split]
        rows = []
        for intent_i, speaker_i in zip(_balanced(len(intents), n, rng), _balanced(len(speakers), n, rng), strict=True):
            slurp_id += 1
            intent, voice = intents[intent_i], speakers[speaker_i]
            templates = TEMPLATES[intent]
            words, entities = _render(templates[int(rng.integers(len(templates)))], split, rng)
            file = f"audio-{_FIRST_AUDIO_NUMBER + slurp_id}-headset.flac"
            spoken = _perturbed(voice, config, rng) if split == "train" else voice
            rows.append((_line(slurp_id, intent, words, entities, file, speaker_id(voice)), spoken))
        plan[split] = rows
    return plan


def _perturbed(voice: Voice, config: MiniSlurpConfig, rng: np.random.Generator) -> Voice:
    """The speaker's voice with this utterance's pitch and rate perturbation (none when both are 0)."""
    if not (config.pitch_jitter or config.rate_jitter):
        return voice
    pitch = voice.pitch + int(rng.integers(-config.pitch_jitter, config.pitch_jitter + 1))
    rate = voice.rate * (1.0 + float(rng.uniform(-config.rate_jitter, config.rate_jitter)))
    return Voice(voice.name, rate=int(round(min(max(rate, 80), 450))), pitch=min(max(pitch, 0), 99))


def config_hash(config: MiniSlurpConfig) -> str:
    """Digest of everything that shapes the output, so a changed inventory also invalidates old corpora."""
    payload = {
        "config": asdict(config),
        "format": _FORMAT_VERSION,
        "templates": TEMPLATES,
        "fillers": FILLERS,
        "speakers": {split: [asdict(v) for v in voices] for split, voices in SPEAKERS.items()},
        "constants": [_PREFIXES, _PREFIX_PROBABILITY, _HOLD_OUT_EVERY, _FIRST_AUDIO_NUMBER, _PEAK],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


class _Synthesizer:
    """espeak at its native rate plus one cached resampling kernel (torchaudio's functional resample
    rebuilds the kernel on every call, which would dominate generation time), plus white noise."""

    def __init__(self, sample_rate: int, noise_db: float) -> None:
        self.noise_gain = 10.0 ** (noise_db / 20.0)
        self.resample = None
        if sample_rate != NATIVE_SAMPLE_RATE:
            import torchaudio

            self.resample = torchaudio.transforms.Resample(NATIVE_SAMPLE_RATE, sample_rate)

    def __call__(self, text: str, voice: Voice, rng: np.random.Generator) -> np.ndarray:
        audio, _ = synthesize(text, voice)
        if self.resample is not None:
            import torch

            with torch.no_grad():
                audio = self.resample(torch.from_numpy(audio)).numpy()
        peak = float(np.abs(audio).max())
        if peak > _PEAK:  # some variants (m7) reach full scale; keep headroom so the noise does not clip
            audio = audio * np.float32(_PEAK / peak)
        rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))
        noise = rng.standard_normal(audio.shape[0]).astype(np.float32) * np.float32(rms * self.noise_gain)
        return np.clip(audio + noise, -1.0, 1.0)


def _write_jsonl(path: Path, records: list[dict]) -> None:
    write_text_atomic(path, "".join(json.dumps(r) + "\n" for r in records))


def make_mini_slurp(out_dir: str | Path, config: MiniSlurpConfig = MiniSlurpConfig(), *, progress: bool = True) -> Path:
    """Write the mini corpus under ``out_dir`` in the SLURP release layout and return ``out_dir``.

    Idempotent: when ``<out>/.complete`` records the same config hash, nothing is redone. Text is a pure
    function of the config; audio is too when generated in a fresh process (see ``nestbench.synth.espeak``
    on espeak-ng's flutter state).
    """
    out = Path(out_dir)
    digest = config_hash(config)
    if finished_hash(out) == digest:
        return out
    text_dir, audio_dir = out / "dataset" / "slurp", out / "audio" / "slurp_real"
    claim(out, [text_dir / f"{split}.jsonl" for split in SPLITS], [audio_dir], "make_mini_slurp")
    text_dir.mkdir(parents=True, exist_ok=True)
    plan = plan_mini_slurp(config)
    speak = _Synthesizer(config.sample_rate, config.noise_db)
    total = sum(map(len, plan.values()))
    with torch_threads(1), tqdm(total=total, desc="mini-SLURP", unit="utt", disable=not progress) as bar:
        for s, split in enumerate(SPLITS):
            noise_rng = np.random.default_rng([config.seed, s, 1])
            for record, voice in plan[split]:
                audio = speak(record["sentence"], voice, noise_rng)
                path = audio_dir / record["recordings"][0]["file"]
                sf.write(path, audio, config.sample_rate, format="FLAC", subtype="PCM_16")
                bar.update()
            _write_jsonl(text_dir / f"{split}.jsonl", [record for record, _ in plan[split]])
    counts = {split: len(rows) for split, rows in plan.items()}
    (out / MARKER).write_text(json.dumps({"config_hash": digest, "config": asdict(config), "counts": counts}) + "\n")
    (out / _IN_PROGRESS).unlink()
    return out
