"""A cased, punctuated English sentence grammar whose every derivation also renders its German translation.

Why: the offline ASR and English→German speech-translation quickstarts need references with real casing
and punctuation (sentence-initial capitals, names, commas, questions, quotes, apostrophes) and a German
target that follows from the English by rules a small model can learn: gender, case and adjective
agreement, verb-second and verb-final word order. Sampling a *derivation* (``Sentence``: a tree of
lexicon entries and choices) and rendering it twice (``english``, ``german``) makes the two texts agree
by construction. The lower-case ``nestbench.synth.grammar`` stays as it is for the SV and diarization corpora.

clause    = subject verb object [place] [time]           (negated: no place; questions: did ... + base form)
subject   = the|a|<Name>'s [adjective] agent [from <Town>] | <Name>
object    = the|a|<Name>'s [adjective] thing | the|<number> [adjective] things
place     = preposition the [adjective] place | in|near <Town>
sentence  = frame(core); core = clause [connective clause] | "When" clause, clause | [Why|Where|When] question
frame     = plain | "<Interjection>, ...!" | "<Name>, ...!|?" | <Name> said, "..." | "...," said <Name>.

German follows the rules of each construction: nominative subject, accusative object, dative after the
locative prepositions (*im* for *in dem*), genitive after *in der Nähe*, weak/mixed/strong adjective
endings (after *der*, *ein*/*kein*, and uninflected *Annas* or a numeral), definite objects before and
indefinite ones after the time adverbial, *nicht* after them (or *kein* for an indefinite object), the
verb second in main clauses and questions with a question word, first in yes/no questions and after a
fronted time or *also*/*dann*, last after *weil*, *während*, *bevor*, *obwohl* and *als*; a fronted
*Als*-clause puts the main clause's verb first. German quotes are introduced by a colon and followed by
a comma, as in German typesetting, but use ASCII double quotes like the English.

Spoken words: the English text is handed to espeak-ng as is. It contains only letters, spaces,
apostrophes inside words and ``, . ? ! "``, which espeak reads as prosody, so the words spoken are
``spoken_words(text)``: the text lower-cased with punctuation removed (the ASR normalisation).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from nestbench.synth.bilingual_lexicon import (
    AGENT_ADJECTIVES,
    AGENTS,
    CONNECTIVES,
    GENDERS,
    INTERJECTIONS,
    NAMES,
    NUMBERS,
    OBJECT_ADJECTIVES,
    OBJECTS,
    PLACE_ADJECTIVES,
    PLACES,
    PREPOSITIONS,
    QUESTION_WORDS,
    REPORTING_VERBS,
    TIMES,
    TOWNS,
    VERBS,
    Noun,
    PlaceNoun,
    Preposition,
    Verb,
    Word,
)

GRAMMAR_VERSION = 1  # bump when the derivations drawn from one random state change (rules, probabilities)

# ---------------------------------------------------------------------------------------------- derivations


@dataclass(frozen=True)
class NounPhrase:
    """``det``: "the", "a", "poss" (``owner``'s), "name" (``owner`` alone), "the_pl" or "num" (plural)."""

    det: str
    noun: Noun | None = None
    adjective: Word | None = None
    owner: Word | None = None
    number: Word | None = None
    origin: Word | None = None  # "from <Town>" after an agent


@dataclass(frozen=True)
class Place:
    preposition: Preposition
    noun: Noun | None = None
    adjective: Word | None = None
    town: Word | None = None


@dataclass(frozen=True)
class Clause:
    subject: NounPhrase
    verb: Verb
    obj: NounPhrase
    place: Place | None = None
    time: Word | None = None
    negated: bool = False


@dataclass(frozen=True)
class Sentence:
    """One derivation. ``kind``: "statement" or "question" (``question_word`` None: yes/no). A statement may
    front its time and join a ``second`` clause with ``connective`` (an entry of ``CONNECTIVES``). ``frame``:
    "plain", "interjection", "vocative", "quote_before" or "quote_after" (``frame_word``: the interjection
    or the addressed/reporting person; ``reporting``: the reporting verb)."""

    kind: str
    clause: Clause
    question_word: Word | None = None
    fronted_time: bool = False
    connective: tuple[str, str, str, bool] | None = None
    second: Clause | None = None
    frame: str = "plain"
    frame_word: Word | None = None
    reporting: Word | None = None

    @property
    def exclaimed(self) -> bool:
        """A statement after an interjection or a name, or shouted in quotes, ends with "!"."""
        if self.kind != "statement":
            return False
        return self.frame in ("interjection", "vocative") or self.reporting in REPORTING_VERBS["exclamation"]


# ---------------------------------------------------------------------------------------------- English


def _an(word: str) -> str:
    return "an" if word[0].lower() in "aeiou" else "a"


def _np_en(np_: NounPhrase) -> list[str]:
    if np_.det == "name":
        return [np_.owner.en]
    adjective = [np_.adjective.en] if np_.adjective else []
    plural = np_.det in ("the_pl", "num")
    words = adjective + [np_.noun.en_plural if plural else np_.noun.en]
    if np_.det == "poss":
        det = f"{np_.owner.en}'s"
    elif np_.det == "num":
        det = np_.number.en
    elif np_.det == "a":
        det = _an(words[0])
    else:
        det = "the"
    origin = ["from", np_.origin.en] if np_.origin else []
    return [det, *words, *origin]


def _place_en(place: Place) -> list[str]:
    if place.town:
        return [place.preposition.en, place.town.en]
    adjective = [place.adjective.en] if place.adjective else []
    return [place.preposition.en, "the", *adjective, place.noun.en]


def _clause_en(c: Clause, *, question: bool = False, time_first: bool = False) -> str:
    """``question``: "did" + subject + base form; ``time_first``: the time is left out (the caller fronts it)."""
    subject, obj = _np_en(c.subject), _np_en(c.obj)
    if question:
        words = ["did", *subject, c.verb.base, *obj]
    elif c.negated:
        words = [*subject, "didn't", c.verb.base, *obj]
    else:
        words = [*subject, c.verb.past, *obj]
    if c.place:
        words += _place_en(c.place)
    if c.time and not time_first:
        words += c.time.en.split()
    return " ".join(words)


def _capitalise(text: str) -> str:
    return text[:1].upper() + text[1:]


def _core_en(s: Sentence) -> str:
    c = s.clause
    if s.kind == "question":
        body = _clause_en(c, question=True)
        return f"{s.question_word.en} {body}" if s.question_word else body
    if s.connective and s.connective[0] == "when":
        return f"when {_clause_en(s.second)}, {_clause_en(c)}"
    body = _clause_en(c, time_first=s.fronted_time)
    if s.fronted_time:
        body = f"{c.time.en}, {body}"
    if s.connective:
        en, _, _, comma = s.connective
        body += f"{',' if comma else ''} {en} {_clause_en(s.second)}"
    return body


# ---------------------------------------------------------------------------------------------- German

_DEFINITE = {"nom": ("der", "die", "das", "die"), "acc": ("den", "die", "das", "die"),
             "dat": ("dem", "der", "dem", "den"), "gen": ("des", "der", "des", "der")}  # fmt: skip
_INDEFINITE = {"nom": ("ein", "eine", "ein"), "acc": ("einen", "eine", "ein"), "dat": ("einem", "einer", "einem")}
# adjective endings by determiner class (m, f, n, plural)
_WEAK = {"nom": ("e", "e", "e", "en"), "acc": ("en", "e", "e", "en"), "dat": ("en",) * 4, "gen": ("en",) * 4}
_MIXED = {"nom": ("er", "e", "es", "en"), "acc": ("en", "e", "es", "en"), "dat": ("en",) * 4, "gen": ("en",) * 4}
_STRONG = {"nom": ("er", "e", "es", "e"), "acc": ("en", "e", "es", "e"), "dat": ("em", "er", "em", "en"),
           "gen": ("en", "er", "en", "er")}  # fmt: skip
_CONTRACTIONS = {("in", "dem"): "im"}  # the only locative preposition here that contracts (an, bei, zu are not used)


def _np_de(np_: NounPhrase, case: str, *, negative: bool = False) -> list[str]:
    """The noun phrase in ``case``; ``negative`` turns an indefinite article into *kein*."""
    if np_.det == "name":
        return [np_.owner.de]
    plural = np_.det in ("the_pl", "num")
    g = 3 if plural else GENDERS.index(np_.noun.gender)
    if np_.det in ("the", "the_pl"):
        det, endings = _DEFINITE[case][g], _WEAK
    elif np_.det == "a":
        det, endings = ("k" if negative else "") + _INDEFINITE[case][g], _MIXED
    elif np_.det == "poss":  # "Annas": uninflected, so the adjective shows the case (strong)
        det, endings = f"{np_.owner.de}s", _STRONG
    else:
        det, endings = np_.number.de, _STRONG
    adjective = [np_.adjective.de + endings[case][g]] if np_.adjective else []
    noun = np_.noun.de_plural if plural else np_.noun.de
    if case == "gen" and np_.noun.de_genitive:
        noun = np_.noun.de_genitive
    origin = ["aus", np_.origin.de] if np_.origin else []
    return [det, *adjective, noun, *origin]


def _place_de(place: Place) -> list[str]:
    p = place.preposition
    if place.town:
        return [*p.de.split(), "von", place.town.de] if p.genitive else [p.de, place.town.de]
    noun_phrase = _np_de(NounPhrase("the", place.noun, place.adjective), "gen" if p.genitive else "dat")
    if not p.genitive and (p.de, noun_phrase[0]) in _CONTRACTIONS:
        return [_CONTRACTIONS[p.de, noun_phrase[0]], *noun_phrase[1:]]
    return [*p.de.split(), *noun_phrase]


def _midfield_de(c: Clause, *, with_time: bool = True) -> list[str]:
    """Everything after subject and verb: definite objects before the time, indefinite ones after it;
    negation by *nicht* after them, or by *kein* on an indefinite object."""
    time = c.time.de.split() if c.time and with_time else []
    indefinite = c.obj.det in ("a", "num")
    obj = _np_de(c.obj, "acc", negative=c.negated)
    words = [*time, *obj] if indefinite else [*obj, *time]
    if c.negated and not indefinite:
        words.append("nicht")
    if c.place:
        words += _place_de(c.place)
    return words


def _clause_de(c: Clause, order: str, *, with_time: bool = True) -> list[str]:
    """``order``: "main" (subject, verb, ...), "inverted" (verb, subject, ...) or "final" (..., verb)."""
    subject, rest = _np_de(c.subject, "nom"), _midfield_de(c, with_time=with_time)
    if order == "main":
        return [*subject, c.verb.de, *rest]
    if order == "inverted":
        return [c.verb.de, *subject, *rest]
    return [*subject, *rest, c.verb.de]


def _core_de(s: Sentence) -> str:
    c = s.clause
    if s.kind == "question":
        if s.question_word:
            return " ".join([s.question_word.de, *_clause_de(c, "inverted")])
        return " ".join(_clause_de(c, "inverted"))
    if s.connective and s.connective[0] == "when":
        return f"als {' '.join(_clause_de(s.second, 'final'))}, {' '.join(_clause_de(c, 'inverted'))}"
    if s.fronted_time:
        body = " ".join([c.time.de, *_clause_de(c, "inverted", with_time=False)])
    else:
        body = " ".join(_clause_de(c, "main"))
    if s.connective:
        _, de, order, _ = s.connective
        body += f", {de} {' '.join(_clause_de(s.second, order))}"
    return body


# ---------------------------------------------------------------------------------------------- frames


def _framed(s: Sentence, core: str, lang: str) -> str:
    end = "?" if s.kind == "question" else "!" if s.exclaimed else "."
    who = getattr(s.frame_word, lang) if s.frame_word else ""
    if s.frame == "plain":
        return f"{_capitalise(core)}{end}"
    if s.frame in ("interjection", "vocative"):
        return f"{who}, {core}{end}"
    verb = getattr(s.reporting, lang)
    quoted = f"{_capitalise(core)}{end}"
    if s.frame == "quote_before":
        return f'{who} {verb}, "{quoted}"' if lang == "en" else f'{who} {verb}: "{quoted}"'
    if lang == "en":
        return f'"{_capitalise(core)}{"," if end == "." else end}" {verb} {who}.'
    return f'"{_capitalise(core)}{"" if end == "." else end}", {verb} {who}.'


def english(s: Sentence) -> str:
    """The English sentence, cased and punctuated: what espeak-ng speaks and the ASR reference."""
    return _framed(s, _core_en(s), "en")


def german(s: Sentence) -> str:
    """The German translation of the same derivation."""
    return _framed(s, _core_de(s), "de")


_SPOKEN = re.compile(r"[a-z]+(?:'[a-z]+)*")


def spoken_words(text: str) -> list[str]:
    """The words espeak-ng speaks for a sentence of this grammar: lower case, no punctuation, apostrophes
    inside words kept ("anna's", "didn't"); also the normalisation for an ASR WER."""
    return _SPOKEN.findall(text.lower())


# ---------------------------------------------------------------------------------------------- sampling


_FRAMES = ("plain",) * 4 + ("interjection", "vocative", "quote_before", "quote_after")
T = TypeVar("T")


def _pick(rng: np.random.Generator, items: Sequence[T]) -> T:
    return items[int(rng.integers(len(items)))]


def _maybe(rng: np.random.Generator, p: float, items: Sequence[T]) -> T | None:
    return _pick(rng, items) if rng.random() < p else None


def _subject(rng: np.random.Generator) -> NounPhrase:
    det = _pick(rng, ("the", "the", "a", "poss", "name", "name"))
    if det == "name":
        return NounPhrase("name", owner=_pick(rng, NAMES))
    return NounPhrase(
        det, _pick(rng, AGENTS), _maybe(rng, 0.4, AGENT_ADJECTIVES),
        owner=_pick(rng, NAMES) if det == "poss" else None,
        origin=_maybe(rng, 0.15, TOWNS) if det != "poss" else None,
    )  # fmt: skip


def _object(rng: np.random.Generator, negated: bool) -> NounPhrase:
    det = _pick(rng, ("the", "a", "poss") if negated else ("the", "the", "a", "a", "poss", "the_pl", "num"))
    return NounPhrase(det, _pick(rng, OBJECTS), _maybe(rng, 0.4, OBJECT_ADJECTIVES),
                      owner=_pick(rng, NAMES) if det == "poss" else None,
                      number=_pick(rng, NUMBERS) if det == "num" else None)  # fmt: skip


def _place(rng: np.random.Generator) -> Place:
    if rng.random() < 0.2:
        return Place(PREPOSITIONS[_pick(rng, ("in", "near"))], town=_pick(rng, TOWNS))
    place: PlaceNoun = _pick(rng, PLACES)
    return Place(PREPOSITIONS[_pick(rng, place.prepositions)], place.noun, _maybe(rng, 0.25, PLACE_ADJECTIVES))


def _clause(rng: np.random.Generator, *, negated: bool = False, place: bool = True, time: bool = True) -> Clause:
    return Clause(
        _subject(rng), _pick(rng, VERBS), _object(rng, negated),
        place=_place(rng) if place and not negated and rng.random() < 0.5 else None,
        time=_pick(rng, TIMES) if time and rng.random() < 0.5 else None,
        negated=negated,
    )  # fmt: skip


def derive(rng: np.random.Generator) -> Sentence:
    """One random derivation, drawing every construction of the grammar."""
    if rng.random() < 0.3:
        question_word = _maybe(rng, 0.5, QUESTION_WORDS)
        where, when = (question_word is not None and question_word.en == w for w in ("where", "when"))
        clause = _clause(rng, place=not where, time=not when)
        kind, fronted, connective, second = "question", False, None, None
    else:
        kind, question_word = "statement", None
        clause = _clause(rng, negated=rng.random() < 0.15)
        connective = _maybe(rng, 0.3, CONNECTIVES)
        second = _clause(rng, time=False) if connective else None
        fronted = clause.time is not None and (connective is None or connective[0] != "when") and rng.random() < 0.4
    frame, frame_word, reporting = _pick(rng, _FRAMES), None, None
    if frame == "interjection" and kind == "question":
        frame = "vocative"
    if frame == "interjection":
        frame_word = _pick(rng, INTERJECTIONS)
    elif frame != "plain":  # someone addressed or quoted, not named in the sentence itself
        named = {np_.owner for c in (clause, second) if c for np_ in (c.subject, c.obj)}
        frame_word = _pick(rng, [name for name in NAMES if name not in named])
    if frame.startswith("quote"):
        options = REPORTING_VERBS["question"] if kind == "question" else (
            REPORTING_VERBS["statement"] + REPORTING_VERBS["exclamation"])  # fmt: skip
        reporting = _pick(rng, options)
    return Sentence(kind, clause, question_word, fronted, connective, second, frame, frame_word, reporting)


def derive_sized(rng: np.random.Generator, n_words: int, tries: int = 12) -> Sentence:
    """Of ``tries`` derivations, the first whose spoken word count is closest to ``n_words``."""
    best, best_gap = None, None
    for _ in range(tries):
        s = derive(rng)
        gap = abs(len(spoken_words(english(s))) - n_words)
        if best_gap is None or gap < best_gap:
            best, best_gap = s, gap
        if gap == 0:
            break
    return best
