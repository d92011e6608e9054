"""Tokenizers: special ids, round trips, determinism, tiny corpora, persistence."""

import pytest

from nestbench.text import CharTokenizer, SentencePieceTokenizer, Tokenizer, load_tokenizer

TEXTS = [
    "turn on the lights in the kitchen",
    "what is the weather like today",
    "set an alarm for seven am",
    "play some jazz music",
    "[scenario: iot | action: hue_lightoff]",
]


@pytest.fixture(scope="module")
def spm_dir(tmp_path_factory):
    pytest.importorskip("sentencepiece")
    return tmp_path_factory.mktemp("spm")


def _check_specials(tok):
    ids = [tok.pad_id, tok.bos_id, tok.eos_id]
    assert len(set(ids)) == 3 and all(0 <= i < tok.vocab_size for i in ids)


@pytest.mark.parametrize("model_type", ["bpe", "unigram"])
def test_sentencepiece_trains_tiny_corpus_and_round_trips(spm_dir, model_type):
    # vocab_size far above what 5 sentences support: hard_vocab_limit=False lets it train anyway.
    tok = SentencePieceTokenizer.train(TEXTS, spm_dir / model_type, vocab_size=500, model_type=model_type)
    assert isinstance(tok, Tokenizer)
    assert (spm_dir / f"{model_type}.model").exists() and tok.vocab_size < 500
    _check_specials(tok)
    assert tok.unk_id not in (tok.pad_id, tok.bos_id, tok.eos_id)
    for text in TEXTS:
        ids = tok.encode(text)
        assert tok.bos_id not in ids and tok.eos_id not in ids
        assert tok.decode(ids) == text
        assert tok.decode([tok.bos_id, *ids, tok.eos_id, tok.pad_id, tok.pad_id]) == text
    reloaded = load_tokenizer(tok.model_path)
    assert isinstance(reloaded, SentencePieceTokenizer)
    assert reloaded.encode(TEXTS[0]) == tok.encode(TEXTS[0])


def test_sentencepiece_training_is_deterministic(spm_dir):
    first = SentencePieceTokenizer.train(TEXTS * 3, spm_dir / "det", vocab_size=60, model_type="unigram")
    model = first.model_path.read_bytes()
    again = SentencePieceTokenizer.train(iter(TEXTS * 3), spm_dir / "det", vocab_size=60, model_type="unigram")
    assert again.model_path.read_bytes() == model


def test_sentencepiece_keeps_user_symbols_whole(spm_dir):
    tok = SentencePieceTokenizer.train(
        TEXTS, spm_dir / "sym", vocab_size=80, user_defined_symbols=["<sep>", "hue_lightoff"]
    )
    ids = tok.encode("lights <sep> hue_lightoff")
    assert "<sep>" in [tok.decode([i]) for i in ids]
    assert "hue_lightoff" in [tok.decode([i]) for i in ids]


def test_sentencepiece_rejects_vocab_below_character_count(spm_dir):
    with pytest.raises(ValueError, match="vocab_size"):
        SentencePieceTokenizer.train(TEXTS, spm_dir / "small", vocab_size=10)
    with pytest.raises(ValueError, match="model_type"):
        SentencePieceTokenizer.train(TEXTS, spm_dir / "bad", vocab_size=100, model_type="word")


def test_char_tokenizer_round_trip_and_specials():
    tok = CharTokenizer.build(TEXTS)
    assert isinstance(tok, Tokenizer)
    _check_specials(tok)
    assert tok.vocab_size == 4 + len(set("".join(TEXTS)))
    for text in TEXTS:
        ids = tok.encode(text)
        assert len(ids) == len(text)
        assert tok.decode([tok.bos_id, *ids, tok.eos_id, tok.pad_id]) == text
    assert tok.encode("jazz\u00e9")[-1] == tok.unk_id
    assert tok.decode(tok.encode("jazz\u00e9")) == "jazz\u2047"


def test_char_tokenizer_user_symbols_longest_match_first():
    tok = CharTokenizer.build(["a | b"], user_defined_symbols=["<s>", "<sep>"])
    ids = tok.encode("a<sep>b<s>")
    assert ids == [tok.encode("a")[0], tok.encode("<sep>")[0], tok.encode("b")[0], tok.encode("<s>")[0]]
    assert tok.decode(ids) == "a<sep>b<s>"
    # "<" alone is not in the vocabulary (it only occurs inside the symbols), so it is unknown.
    assert tok.encode("<")[0] == tok.unk_id


def test_char_tokenizer_save_load(tmp_path):
    tok = CharTokenizer.build(TEXTS, user_defined_symbols=["<sep>"])
    tok.save(tmp_path / "tok.json")
    loaded = load_tokenizer(tmp_path / "tok.json")
    assert isinstance(loaded, CharTokenizer)
    assert loaded.symbols == tok.symbols
    assert loaded.encode(TEXTS[4] + "<sep>") == tok.encode(TEXTS[4] + "<sep>")


def test_char_tokenizer_rejects_bad_symbols():
    with pytest.raises(ValueError):
        CharTokenizer(["a", "a"])
    with pytest.raises(ValueError):
        CharTokenizer(["a", "<eos>"])
