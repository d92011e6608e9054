"""A small sentence grammar for the synthetic corpora, sized in words from a target speaking time.

Why: synthetic speakers must say varied text of a controlled length (an utterance of 2-5 s, a
conversational turn of 1-8 s) so that no model can key on the words; one grammar serves every corpus.

clause = the [adjective] agent verb the [adjective] object [place] [time]; clauses join with connectives.
"""

from __future__ import annotations

import numpy as np

ADJECTIVES = (
    "old", "young", "tall", "quiet", "busy", "clever", "angry", "happy", "tired", "brave", "small", "strange",
    "friendly", "careful", "famous", "lazy", "green", "heavy", "bright", "broken", "golden", "silver", "wooden",
    "dusty", "shiny", "yellow", "narrow", "gentle", "noisy", "patient",
)  # fmt: skip
AGENTS = (
    "farmer", "teacher", "doctor", "sailor", "baker", "painter", "driver", "student", "neighbour", "captain",
    "gardener", "singer", "writer", "fisherman", "soldier", "nurse", "pilot", "dancer", "lawyer", "builder",
    "child", "woman", "man", "girl", "boy", "dog", "cat", "horse", "king", "queen",
)  # fmt: skip
VERBS = (
    "carried", "painted", "found", "sold", "washed", "dropped", "opened", "borrowed", "repaired", "hid",
    "bought", "cleaned", "moved", "watched", "lifted", "pushed", "followed", "packed", "measured", "counted",
    "stole", "built", "brought", "covered", "chose", "threw", "kept", "fixed", "wrapped", "described",
)  # fmt: skip
OBJECTS = (
    "basket", "ladder", "letter", "bottle", "window", "bicycle", "blanket", "hammer", "candle", "picture",
    "kettle", "umbrella", "wagon", "mirror", "bucket", "carpet", "lantern", "pillow", "garden gate", "map",
    "suitcase", "table", "barrel", "rope", "shovel", "violin", "clock", "fence", "boat", "parcel",
)  # fmt: skip
PLACES = (
    "near the river", "in the kitchen", "behind the barn", "at the station", "by the old bridge",
    "in the market", "under the stairs", "across the field", "beside the church", "in the village",
    "at the harbour", "on the hill", "inside the shed", "along the road", "in the forest", "near the school",
    "at the corner shop", "by the lake", "in the garden", "on the roof",
)  # fmt: skip
TIMES = (
    "on monday", "last winter", "after lunch", "before dawn", "this morning", "every sunday", "at midnight",
    "in april", "yesterday", "last night", "on friday", "after the storm", "in the evening", "at noon",
    "next week", "during the summer", "on tuesday", "before dinner", "in october", "that afternoon",
)  # fmt: skip
CONNECTIVES = ("and then", "while", "because", "but", "before", "so", "after", "although", "and", "until")
INVENTORY = (ADJECTIVES, AGENTS, VERBS, OBJECTS, PLACES, TIMES, CONNECTIVES)
# espeak speaks this grammar's words about 1.2 times faster than its nominal words/min (measured, sd 8 %).
WORDS_PER_RATE_WORD = 1.2
MIN_CLAUSE = 5  # the agent verb the object


def pick(rng: np.random.Generator, items: tuple[str, ...]) -> str:
    return items[int(rng.integers(len(items)))]


def n_words_for(speech_s: float, rate: float) -> int:
    """How many words espeak needs to speak for about ``speech_s`` seconds at ``rate`` words/min."""
    return max(MIN_CLAUSE, int(round(speech_s * rate / 60.0 * WORDS_PER_RATE_WORD)))


def clause(budget: int, rng: np.random.Generator) -> list[str]:
    """One clause of about ``budget`` words (at least ``MIN_CLAUSE``): optional parts, in random order, while
    they fit."""
    agent, verb, obj = pick(rng, AGENTS), pick(rng, VERBS), pick(rng, OBJECTS)
    agent_adj, object_adj = (ADJECTIVES[int(i)] for i in rng.choice(len(ADJECTIVES), size=2, replace=False))
    optional = {
        "agent_adj": agent_adj,
        "object_adj": object_adj,
        "place": pick(rng, PLACES),
        "time": pick(rng, TIMES),
    }
    size, chosen = MIN_CLAUSE + obj.count(" "), set()
    for name in rng.permutation(sorted(optional)):
        if size + len(optional[name].split()) <= budget:
            chosen.add(str(name))
            size += len(optional[name].split())
    part = {name: optional[name] if name in chosen else "" for name in optional}
    words = ["the", part["agent_adj"], agent, verb, "the", part["object_adj"], obj, part["place"], part["time"]]
    return " ".join(words).split()


def sentence(n_words: int, rng: np.random.Generator) -> str:
    """Clauses joined by connectives, about ``n_words`` words in all."""
    words: list[str] = []
    while not words or n_words - len(words) >= MIN_CLAUSE + 2:
        if words:
            words += pick(rng, CONNECTIVES).split()
        remaining = n_words - len(words)
        if remaining >= 2 * MIN_CLAUSE + 2:  # room for two more clauses: give this one a random share
            remaining = int(rng.integers(MIN_CLAUSE, remaining - MIN_CLAUSE - 1))
        words += clause(remaining, rng)
    return " ".join(words)
