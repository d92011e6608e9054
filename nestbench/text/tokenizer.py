"""Tokenizers mapping target text to ids and back, with the special ids a seq2seq decoder needs.

Both tokenizers reserve the same four special ids, pad=0, unk=1, bos=2, eos=3, so a decoder built
for one works with the other; ``decode`` drops pad/bos/eos, so a raw hypothesis decodes cleanly.
``SentencePieceTokenizer`` is what the adapters train on real corpora; ``CharTokenizer`` needs no
training and no extra package, for tests and for corpora too small for a subword vocabulary.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3
_SPECIALS = ("<pad>", "<unk>", "<bos>", "<eos>")  # in id order
_UNK_TEXT = "\u2047"  # "⁇", what SentencePiece renders for unk too


@runtime_checkable
class Tokenizer(Protocol):
    """What a task adapter needs from a tokenizer."""

    @property
    def vocab_size(self) -> int: ...
    @property
    def pad_id(self) -> int: ...
    @property
    def bos_id(self) -> int: ...
    @property
    def eos_id(self) -> int: ...
    def encode(self, text: str) -> list[int]: ...
    def decode(self, ids: Iterable[int]) -> str: ...


class SentencePieceTokenizer:
    """A trained SentencePiece model (``.model`` file) with pad/unk/bos/eos at ids 0/1/2/3."""

    def __init__(self, model_path: str | Path):
        import sentencepiece as spm  # deferred: only this class needs the package

        self.model_path = Path(model_path)
        self._sp = spm.SentencePieceProcessor(model_file=str(self.model_path))
        ids = (self._sp.pad_id(), self._sp.unk_id(), self._sp.bos_id(), self._sp.eos_id())
        if min(ids) < 0 or len(set(ids)) != 4:
            raise ValueError(f"{self.model_path}: needs distinct pad/unk/bos/eos ids, got {ids} (see train())")
        self._skip = {self.pad_id, self.bos_id, self.eos_id}

    @classmethod
    def train(
        cls,
        texts: Iterable[str],
        model_prefix: str | Path,
        vocab_size: int,
        model_type: str = "bpe",
        character_coverage: float = 1.0,
        user_defined_symbols: Sequence[str] = (),
    ) -> SentencePieceTokenizer:
        """Train ``<model_prefix>.model`` (and ``.vocab``) on ``texts`` and load it.

        Deterministic: one thread, no sentence sampling or shuffling, so the same texts give a
        byte-identical model. ``vocab_size`` is an upper bound (``hard_vocab_limit=False``) so tiny
        corpora train, but it must still cover every distinct character plus the specials and
        ``user_defined_symbols`` (which are never split, e.g. slot-filling markup).
        """
        import sentencepiece as spm

        if model_type not in ("bpe", "unigram"):
            raise ValueError(f"model_type must be 'bpe' or 'unigram', got {model_type!r}")
        if any("," in s for s in user_defined_symbols):
            raise ValueError("user_defined_symbols cannot contain ',' (SentencePiece's list separator)")
        model_prefix = Path(model_prefix)
        model_prefix.parent.mkdir(parents=True, exist_ok=True)
        options = dict(
            model_prefix=str(model_prefix),
            vocab_size=vocab_size,
            model_type=model_type,
            character_coverage=character_coverage,
            hard_vocab_limit=False,
            pad_id=PAD_ID,
            unk_id=UNK_ID,
            bos_id=BOS_ID,
            eos_id=EOS_ID,
            num_threads=1,
            input_sentence_size=0,
            shuffle_input_sentence=False,
            minloglevel=2,
        )
        if user_defined_symbols:
            options["user_defined_symbols"] = list(user_defined_symbols)
        try:
            spm.SentencePieceTrainer.train(sentence_iterator=iter(texts), **options)
        except RuntimeError as e:
            if "smaller than required_chars" in str(e):
                raise ValueError(f"vocab_size={vocab_size} is below the corpus' character count: {e}") from e
            raise
        return cls(model_prefix.with_name(model_prefix.name + ".model"))

    @property
    def vocab_size(self) -> int:
        return self._sp.get_piece_size()

    @property
    def pad_id(self) -> int:
        return self._sp.pad_id()

    @property
    def unk_id(self) -> int:
        return self._sp.unk_id()

    @property
    def bos_id(self) -> int:
        return self._sp.bos_id()

    @property
    def eos_id(self) -> int:
        return self._sp.eos_id()

    def encode(self, text: str) -> list[int]:
        """Ids of ``text`` without bos/eos (the decoder's teacher forcing adds those)."""
        return self._sp.encode(text, out_type=int)

    def decode(self, ids: Iterable[int]) -> str:
        return self._sp.decode([i for i in map(int, ids) if i not in self._skip])


class CharTokenizer:
    """One id per character, plus whole-symbol ids for multi-character ``symbols`` (matched first).

    Ids: the four specials, then ``symbols`` in the given order. Characters outside the vocabulary
    encode to unk.
    """

    def __init__(self, symbols: Sequence[str]):
        symbols = list(symbols)
        if len(set(symbols)) != len(symbols) or any(not s or s in _SPECIALS for s in symbols):
            raise ValueError("symbols must be distinct, non-empty and not a special token")
        self.symbols = symbols
        self._ids = {s: i for i, s in enumerate(symbols, start=len(_SPECIALS))}
        multi = sorted((s for s in symbols if len(s) > 1), key=len, reverse=True)  # longest match first
        self._pattern = re.compile("|".join([*map(re.escape, multi), "."]), re.DOTALL)

    @classmethod
    def build(cls, texts: Iterable[str], user_defined_symbols: Sequence[str] = ()) -> CharTokenizer:
        """Vocabulary = ``user_defined_symbols`` then the sorted distinct characters of ``texts``."""
        chars = sorted(set().union(*map(set, texts)) - set(user_defined_symbols))
        return cls([*user_defined_symbols, *chars])

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps({"type": "char", "symbols": self.symbols}, ensure_ascii=False, indent=1))

    @classmethod
    def load(cls, path: str | Path) -> CharTokenizer:
        data = json.loads(Path(path).read_text())
        if data.get("type") != "char":
            raise ValueError(f"{path}: not a CharTokenizer file")
        return cls(data["symbols"])

    @property
    def vocab_size(self) -> int:
        return len(_SPECIALS) + len(self.symbols)

    pad_id = PAD_ID
    unk_id = UNK_ID
    bos_id = BOS_ID
    eos_id = EOS_ID

    def encode(self, text: str) -> list[int]:
        """Ids of ``text`` without bos/eos (the decoder's teacher forcing adds those)."""
        return [self._ids.get(s, UNK_ID) for s in self._pattern.findall(text)]

    def decode(self, ids: Iterable[int]) -> str:
        offset = len(_SPECIALS)
        out = []
        for i in map(int, ids):
            if i >= offset:
                out.append(self.symbols[i - offset])
            elif i == UNK_ID:
                out.append(_UNK_TEXT)
        return "".join(out)


def load_tokenizer(path: str | Path) -> SentencePieceTokenizer | CharTokenizer:
    """Load by file type: a SentencePiece ``.model`` or a CharTokenizer ``.json``."""
    path = Path(path)
    if path.suffix == ".json":
        return CharTokenizer.load(path)
    return SentencePieceTokenizer(path)
