"""nestbench.synth.speech_text_mini and its bilingual grammar: held-out sentences and voices are unseen, every
English transcript is exactly what espeak-ng spoke and has its German translation, and the corpus builds
once and is reused."""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("espeakng_loader", reason="pip install espeakng-loader")

from nestbench.manifest import read_manifest  # noqa: E402
from nestbench.synth import bilingual_lexicon as lex  # noqa: E402
from nestbench.synth import espeak, speech_text_mini  # noqa: E402
from nestbench.synth.bilingual_grammar import (  # noqa: E402
    Clause,
    NounPhrase,
    Place,
    Sentence,
    derive,
    derive_sized,
    english,
    german,
    spoken_words,
)
from nestbench.synth.speech_text_mini import (  # noqa: E402
    MARKER,
    SPLITS,
    SpeechTextMiniConfig,
    SpeechTextMiniCorpus,
    config_hash,
    make_speech_text_mini,
    plan_speech_text_mini,
)

TINY = SpeechTextMiniConfig(n_train=6, n_dev=2, n_test=3, n_train_speakers=3, n_dev_speakers=1,
                            n_test_speakers=2, seed=5)  # fmt: skip
KEYS = ["audio_filepath", "duration", "id", "speaker", "text", "lang", "target_text", "source_lang", "target_lang"]
ENGLISH_CHARS = re.compile(r"[A-Za-z',.?!\" ]+")
END = re.compile(r'.*[.?!]"?$')
Spoken = tuple[SpeechTextMiniCorpus, list[str]]  # the tiny corpus and the texts espeak-ng was given


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def default_plan() -> speech_text_mini.SpeechTextMiniPlan:
    return plan_speech_text_mini()  # about a second: the real sizes, without audio


@pytest.fixture(scope="module")
def spoken(tmp_path_factory: pytest.TempPathFactory) -> Spoken:
    """The tiny corpus, built while recording every text handed to espeak-ng."""
    texts = []
    real = speech_text_mini.synthesize

    def recording(text, voice):
        texts.append(text)
        return real(text, voice)

    with pytest.MonkeyPatch.context() as m:
        m.setattr(speech_text_mini, "synthesize", recording)
        corpus = make_speech_text_mini(tmp_path_factory.mktemp("st") / "corpus", TINY, progress=False)
    return corpus, texts


@pytest.fixture(scope="module")
def lines(spoken: Spoken) -> dict[str, list[dict]]:
    return {split: read_lines(spoken[0].manifest(split)) for split in SPLITS}


# ---------------------------------------------------------------------------------------------- plan


def test_plan_is_a_pure_function_of_the_config() -> None:
    assert plan_speech_text_mini(TINY) == plan_speech_text_mini(TINY)
    texts = [u.text for u in plan_speech_text_mini(TINY).utterances["train"]]
    assert [u.text for u in plan_speech_text_mini(replace(TINY, seed=6)).utterances["train"]] != texts
    assert config_hash(TINY) == config_hash(replace(TINY)) != config_hash(replace(TINY, seed=6))


def test_held_out_sentences_are_unseen_and_stable(default_plan: speech_text_mini.SpeechTextMiniPlan) -> None:
    texts = {split: [u.text for u in default_plan.utterances[split]] for split in SPLITS}
    targets = {split: [u.target_text for u in default_plan.utterances[split]] for split in SPLITS}
    assert [len(texts[s]) for s in SPLITS] == [3000, 200, 300]
    for column in (texts, targets):
        everything = [t for split in SPLITS for t in column[split]]
        assert len(set(everything)) == len(everything)  # so test and dev never occur in train, nor test in dev
    # the held-out texts are planned first: a smaller train split leaves them as they are
    smaller = plan_speech_text_mini(replace(SpeechTextMiniConfig(), n_train=500))
    assert [u.text for u in smaller.utterances["test"]] == texts["test"]
    # and all their words are known from training (no out-of-vocabulary words for the ASR)
    train_words = {w for t in texts["train"] for w in spoken_words(t)}
    assert {w for t in texts["test"] + texts["dev"] for w in spoken_words(t)} <= train_words


def test_speakers_and_voice_variants_are_disjoint_between_splits(
    default_plan: speech_text_mini.SpeechTextMiniPlan,
) -> None:
    for plan, distinct in ((default_plan, True), (plan_speech_text_mini(replace(TINY, n_train_speakers=70)), False)):
        by_split = {split: [s for s in plan.speakers if s.split == split] for split in SPLITS}
        variants = {split: {s.variant for s in speakers} for split, speakers in by_split.items()}
        for a, b in (("train", "dev"), ("train", "test"), ("dev", "test")):
            assert not variants[a] & variants[b]
            assert not {s.speaker for s in by_split[a]} & {s.speaker for s in by_split[b]}
        assert (len({s.variant for s in plan.speakers}) == len(plan.speakers)) is distinct
        for split, utterances in plan.utterances.items():
            counts = Counter(u.speaker for u in utterances)
            assert set(counts) <= {s.speaker for s in by_split[split]}
            assert max(counts.values()) - min(counts.values()) <= 1  # balanced over the split's speakers


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="seed"):
        replace(TINY, seed=-1)
    with pytest.raises(ValueError, match="n_dev"):
        replace(TINY, n_dev_speakers=0)
    with pytest.raises(ValueError, match="speech_s"):
        replace(TINY, speech_s=(3.0, 2.0))
    with pytest.raises(ValueError, match="pitch_range"):
        replace(TINY, pitch_range=(2, 50))
    SpeechTextMiniConfig()  # the defaults are valid


# ---------------------------------------------------------------------------------------------- grammar


def _find(table, en: str):
    return next(x for x in table if getattr(x, "en", getattr(x, "past", None)) == en)


def _np(det: str, noun: str = "", adjective: str | None = None, *, owner: str | None = None,
        number: str | None = None, origin: str | None = None, objects: bool = False) -> NounPhrase:  # fmt: skip
    nouns, adjectives = (lex.OBJECTS, lex.OBJECT_ADJECTIVES) if objects else (lex.AGENTS, lex.AGENT_ADJECTIVES)
    return NounPhrase(
        det, _find(nouns, noun) if noun else None, _find(adjectives, adjective) if adjective else None,
        owner=_find(lex.NAMES, owner) if owner else None, number=_find(lex.NUMBERS, number) if number else None,
        origin=_find(lex.TOWNS, origin) if origin else None,
    )  # fmt: skip


def _place(preposition: str, noun: str) -> Place:
    return Place(lex.PREPOSITIONS[preposition], next(p.noun for p in lex.PLACES if p.noun.en == noun))


def _obj(det: str, noun: str, adjective: str | None = None, **kwargs) -> NounPhrase:
    return _np(det, noun, adjective, objects=True, **kwargs)


def _verb(past: str) -> lex.Verb:
    return _find(lex.VERBS, past)


def _time(en: str) -> lex.Word:
    return _find(lex.TIMES, en)


def _connective(en: str) -> tuple[str, str, str, bool]:
    return next(c for c in lex.CONNECTIVES if c[0] == en)


CASES = [
    (Sentence("statement", Clause(_np("the", "farmer", "old"), _verb("carried"), _obj("the", "basket"),
                                  _place("near", "river"))),
     "The old farmer carried the basket near the river.",
     "Der alte Bauer trug den Korb in der Nähe des Flusses."),
    (Sentence("statement", Clause(_np("name", owner="Anna"), _verb("sold"), _obj("a", "clock", "old"),
                                  time=_time("on Monday"), negated=True), fronted_time=True),
     "On Monday, Anna didn't sell an old clock.",
     "Am Montag verkaufte Anna keine alte Uhr."),
    (Sentence("statement", Clause(_np("the", "nurse"), _verb("found"), _obj("poss", "picture", owner="Tom"),
                                  time=_time("last winter"), negated=True)),
     "The nurse didn't find Tom's picture last winter.",
     "Die Krankenschwester fand Toms Bild letzten Winter nicht."),
    (Sentence("question", Clause(_np("poss", "dog", "tired", owner="Tom"), _verb("carried"),
                                 _obj("num", "stone", "heavy", number="three"), _place("in", "garden"),
                                 _time("yesterday"))),
     "Did Tom's tired dog carry three heavy stones in the garden yesterday?",
     "Trug Toms müder Hund gestern drei schwere Steine im Garten?"),
    (Sentence("statement", Clause(_np("a", "child", origin="Vienna"), _verb("found"),
                                  _obj("poss", "umbrella", "red", owner="Emma")),
              connective=_connective("when"),
              second=Clause(_np("the", "nurse"), _verb("opened"), _obj("the", "window"))),
     "When the nurse opened the window, a child from Vienna found Emma's red umbrella.",
     "Als die Krankenschwester das Fenster öffnete, fand ein Kind aus Wien Emmas roten Regenschirm."),
    (Sentence("statement", Clause(_np("the", "baker"), _verb("sold"), _obj("the", "cake")),
              connective=_connective("because"),
              second=Clause(_np("the", "girl"), _verb("needed"), _obj("a", "knife")), frame="quote_after",
              frame_word=_find(lex.NAMES, "Anna"), reporting=_find(lex.REPORTING_VERBS["statement"], "said")),
     '"The baker sold the cake because the girl needed a knife," said Anna.',
     '"Der Bäcker verkaufte den Kuchen, weil das Mädchen ein Messer brauchte", sagte Anna.'),
    (Sentence("question", Clause(_np("the", "queen"), _verb("hid"), _obj("the_pl", "ring", "golden"),
                                 _place("behind", "castle")), question_word=_find(lex.QUESTION_WORDS, "why"),
              frame="vocative", frame_word=_find(lex.NAMES, "Paul")),
     "Paul, why did the queen hide the golden rings behind the castle?",
     "Paul, warum versteckte die Königin die goldenen Ringe hinter dem Schloss?"),
    (Sentence("statement", Clause(_np("poss", "horse", owner="Lisa"), _verb("broke"), _obj("a", "mirror", "expensive"),
                                  Place(lex.PREPOSITIONS["near"], town=_find(lex.TOWNS, "Cologne"))),
              frame="interjection", frame_word=_find(lex.INTERJECTIONS, "Oh no")),
     "Oh no, Lisa's horse broke an expensive mirror near Cologne!",
     "Oh nein, Lisas Pferd zerbrach einen teuren Spiegel in der Nähe von Köln!"),
    (Sentence("statement", Clause(_np("the", "dog"), _verb("stole"), _obj("the", "cake")),
              connective=_connective("so"),
              second=Clause(_np("the", "cook", "angry"), _verb("bought"), _obj("a", "egg")),
              frame="quote_before", frame_word=_find(lex.NAMES, "Ben"),
              reporting=_find(lex.REPORTING_VERBS["exclamation"], "shouted")),
     'Ben shouted, "The dog stole the cake, so the angry cook bought an egg!"',
     'Ben rief: "Der Hund stahl den Kuchen, also kaufte die wütende Köchin ein Ei!"'),
]  # fmt: skip


@pytest.mark.parametrize(("sentence", "en", "de"), CASES, ids=[en[:40] for _, en, _ in CASES])
def test_one_derivation_renders_both_languages(sentence: Sentence, en: str, de: str) -> None:
    assert english(sentence) == en
    assert german(sentence) == de


def test_derivations_are_cased_punctuated_and_parallel() -> None:
    rng = np.random.default_rng(0)
    seen = Counter()
    for _ in range(3000):
        s = derive(rng)
        en, de = english(s), german(s)
        assert ENGLISH_CHARS.fullmatch(en), en
        for text in (en, de):
            assert END.fullmatch(text) and text.lstrip('"')[0].isupper(), text
            assert "  " not in text and " ," not in text and not re.search(r"[,:][^ \"]", text)
        assert en.count("?") == de.count("?") == (s.kind == "question")
        assert en.count("!") == de.count("!") and en.count('"') == de.count('"') in (0, 2)
        assert (":" in de) == (s.frame == "quote_before") == (en.count(', "') == 1)
        names = {w.en for w in lex.NAMES if re.search(rf"\b{w.en}\b", en)}
        assert all(re.search(rf"\b{name}s?\b", de) for name in names)  # names are not translated
        for np_ in (s.clause.subject, s.clause.obj):  # German nouns are capitalised wherever they stand
            if np_.noun:
                assert re.search(rf"\b{np_.noun.de if np_.det not in ('num', 'the_pl') else np_.noun.de_plural}\b", de)
        seen["'s" in en] += 1
    assert seen[True] > 300  # possessives are common enough to learn the apostrophe


def test_sized_derivations_and_the_space_of_sentences() -> None:
    rng = np.random.default_rng(1)
    for n in (5, 9, 14):
        lengths = [len(spoken_words(english(derive_sized(rng, n)))) for _ in range(200)]
        assert abs(np.median(lengths) - n) <= 1
    texts = [english(derive(rng)) for _ in range(20000)]
    assert len(set(texts)) > 19900


def test_lexicon_tables_are_unambiguous() -> None:
    for name, table in lex.TABLES.items():
        rows = [tuple(x) if isinstance(x, tuple) else x for x in (table.values() if isinstance(table, dict) else table)]
        assert len(set(rows)) == len(rows), name
    for table in (lex.AGENTS, lex.OBJECTS, [p.noun for p in lex.PLACES]):
        for forms in ([n.en for n in table], [n.de for n in table]):
            assert len(set(forms)) == len(forms)
        for noun in table:
            assert noun.gender in lex.GENDERS and noun.de[0].isupper() and noun.en.islower()
    for table in (lex.AGENT_ADJECTIVES, lex.OBJECT_ADJECTIVES, lex.PLACE_ADJECTIVES, lex.VERBS, lex.TIMES):
        for lang in ("de", "en") if table is not lex.VERBS else ("de", "past", "base"):
            forms = [getattr(x, lang) for x in table]
            assert len(set(forms)) == len(forms)
    for place in lex.PLACES:
        assert set(place.prepositions) <= set(lex.PREPOSITIONS)
        assert (place.noun.gender == "f") == (place.noun.de_genitive == ""), place.noun
    for word in lex.NAMES + lex.TOWNS + lex.WEEKDAYS + lex.MONTHS:
        assert word.en[0].isupper() and word.de[0].isupper()
    for name in lex.NAMES:  # German possessive is name + s: an s-sound ending would need an apostrophe
        assert name.de[-1] not in "sxz"


# ---------------------------------------------------------------------------------------------- build


def test_layout_manifests_and_audio(spoken: Spoken, lines: dict[str, list[dict]]) -> None:
    corpus = spoken[0]
    root = Path(corpus.root)
    assert (root / MARKER).is_file() and corpus.meta.is_file() and not (root / ".in_progress").exists()
    assert [len(lines[s]) for s in SPLITS] == [6, 2, 3]
    listed = set()
    for split in SPLITS:
        for line in lines[split]:
            assert list(line) == KEYS
            assert (line["lang"], line["source_lang"], line["target_lang"]) == ("en", "en", "de")
            assert line["audio_filepath"] == f"audio/{split}/{line['id']}.wav"
            info = sf.info(str(root / line["audio_filepath"]))
            assert (info.format, info.subtype, info.samplerate, info.channels) == ("WAV", "PCM_16", 16000, 1)
            assert line["duration"] == pytest.approx(info.frames / 16000, abs=1e-4)
            assert 1.0 < line["duration"] < 7.0
            audio, _ = sf.read(str(root / line["audio_filepath"]), dtype="float32")
            assert np.isfinite(audio).all() and np.abs(audio).max() < 0.99
            listed.add(root / line["audio_filepath"])
        entries = read_manifest(corpus.manifest(split))  # relative paths resolve against the manifest folder
        assert [e.utt_id for e in entries] == [line["id"] for line in lines[split]]
    assert set((root / "audio").glob("*/*")) == listed
    meta = json.loads(corpus.meta.read_text())
    assert meta["config_hash"] == config_hash(TINY)
    assert {s: meta["splits"][s]["utterances"] for s in SPLITS} == {"train": 6, "dev": 2, "test": 3}
    plan = plan_speech_text_mini(TINY)
    assert [(line["text"], line["target_text"]) for s in SPLITS for line in lines[s]] == [
        (u.text, u.target_text) for s in SPLITS for u in plan.utterances[s]]  # fmt: skip


def _phonemes(text: str) -> str:
    # pauses, stress marks and linking sounds (r-, ;) change at clause ends; the phonemes of the words do not
    return re.sub(r"r-|[\s_:',;!#]", "", espeak.phonemes(text))


def test_espeak_speaks_exactly_the_transcript(spoken: Spoken, lines: dict[str, list[dict]]) -> None:
    texts = spoken[1]
    assert texts == [line["text"] for s in SPLITS for line in lines[s]]
    rng = np.random.default_rng(2)
    for text in texts + [english(derive(rng)) for _ in range(200)]:
        assert ENGLISH_CHARS.fullmatch(text), text  # no digits, symbols or abbreviations espeak would expand
        assert _phonemes(text) == _phonemes(" ".join(spoken_words(text))), text


def test_finished_corpus_is_reused(spoken: Spoken, monkeypatch: pytest.MonkeyPatch) -> None:
    corpus = spoken[0]

    def no_synthesis(*args, **kwargs):
        raise AssertionError("a finished corpus must not be synthesised again")

    monkeypatch.setattr(speech_text_mini, "synthesize", no_synthesis)
    before = {p: p.stat().st_mtime_ns for p in Path(corpus.root).rglob("*")}
    assert make_speech_text_mini(corpus.root, TINY, progress=False) == corpus
    assert {p: p.stat().st_mtime_ns for p in Path(corpus.root).rglob("*")} == before


def test_interrupted_build_is_redone_foreign_folder_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls, real = 0, speech_text_mini.synthesize

    def dies_after_three(*args, **kwargs):
        nonlocal calls
        calls += 1
        if calls > 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    small = replace(TINY, n_train=3, n_dev=1, n_test=1)
    with monkeypatch.context() as m:
        m.setattr(speech_text_mini, "synthesize", dies_after_three)
        with pytest.raises(KeyboardInterrupt):
            make_speech_text_mini(tmp_path / "c", small, progress=False)
    assert (tmp_path / "c" / ".in_progress").is_file() and not (tmp_path / "c" / MARKER).exists()
    corpus = make_speech_text_mini(tmp_path / "c", small, progress=False)
    assert len(list((tmp_path / "c" / "audio").glob("*/*.wav"))) == 5 and (tmp_path / "c" / MARKER).is_file()
    assert len(read_lines(corpus.manifest("train"))) == 3

    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "train.jsonl").write_text("{}\n")
    with pytest.raises(FileExistsError, match="not written by make_speech_text_mini"):
        make_speech_text_mini(tmp_path / "d", small, progress=False)
