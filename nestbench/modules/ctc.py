"""CTC: the loss the heads share, greedy (best path) decoding, and beam search through flashlight-text.

Why flashlight-text (``torchaudio.models.decoder.ctc_decoder``) for the beam: it is C++ (a beam of 16
costs little next to the encoder on CPU), takes a KenLM model (ARPA or binary) directly, and decodes
either lexicon-free or constrained to a lexicon. pyctcdecode, the other common choice, is pure Python
and several times slower per utterance. The blank is the tokenizers' pad id (0), which no target
contains.

A KenLM model is scored over the decoder's units: over *words* when ``lexicon`` is given (one
``word token token ...`` line per word, ``write_lexicon``; the beam then only spells lexicon words), over
*tokens* otherwise (a character or subword n-gram model). The word separator of a character vocabulary
(its space) is shown to flashlight as ``|``, so lexicon lines stay whitespace-separated.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import torch

SEPARATOR = "|"  # how the word separator token is named to flashlight


def ctc_targets(sequences: Sequence[Sequence[int]], blank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Label sequences as ``ctc_loss`` takes them: right-padded with ``blank`` to [B, max(1, U)], and their
    lengths [B] (an empty sequence keeps one padded column, so the tensor is never zero-width)."""
    lengths = torch.tensor([len(t) for t in sequences], dtype=torch.long)
    out = torch.full((len(sequences), max(1, int(lengths.max()))), blank, dtype=torch.long)
    for i, t in enumerate(sequences):
        out[i, : len(t)] = torch.tensor(list(t), dtype=torch.long)
    return out, lengths


def ctc_loss(
    logits: torch.Tensor, lengths: torch.Tensor, tokens: torch.Tensor, token_lengths: torch.Tensor, blank: int
) -> torch.Tensor:
    """Mean CTC loss per target token (PyTorch's 'mean'), logits [B, T, V] at any precision, computed in
    float32. Utterances too short for their labels give 0 instead of inf (``zero_infinity``): training
    should have skipped them, and one must not poison the batch."""
    log_probs = torch.log_softmax(logits.float(), -1)
    return torch.nn.functional.ctc_loss(
        log_probs.transpose(0, 1), tokens, lengths, token_lengths, blank=blank, zero_infinity=True
    )


def greedy_ctc(log_probs: torch.Tensor, lengths: torch.Tensor, blank: int) -> list[list[int]]:
    """Best path per utterance: argmax per frame, repeats collapsed, blanks dropped. ``log_probs`` [B, T, V]."""
    best = log_probs.argmax(-1).cpu()
    out = []
    for row, n in zip(best, lengths.tolist(), strict=True):
        row = row[: int(n)]
        keep = torch.ones_like(row, dtype=torch.bool)
        keep[1:] = row[1:] != row[:-1]
        out.append([int(t) for t in row[keep] if int(t) != blank])
    return out


def write_lexicon(words: Iterable[str], spell: Callable[[str], Sequence[str]], path: str | Path) -> Path:
    """A flashlight lexicon: each distinct word and its token spelling (SentencePiece pieces, or a
    character vocabulary's letters followed by ``SEPARATOR``)."""
    path = Path(path)
    lines = [f"{w}\t{' '.join(spell(w))}\n" for w in sorted(set(words)) if w and not any(c.isspace() for c in w)]
    path.write_text("".join(lines), encoding="utf-8")
    return path


class CtcBeamDecoder:
    """Beam search over CTC log-probabilities, optionally with a KenLM model; returns token ids.

    ``tokens`` are the vocabulary's strings in id order (specials included); ``separator`` the token
    between words (the space of a character vocabulary), or None for a subword vocabulary."""

    def __init__(
        self,
        tokens: Sequence[str],
        blank: int,
        beam_size: int = 16,
        separator: str | None = " ",
        lm_path: str | None = None,
        lm_weight: float = 0.5,
        word_score: float = 0.0,
        lexicon: str | Path | None = None,
    ):
        from torchaudio.models.decoder import ctc_decoder

        names = [SEPARATOR if t == separator else (t or f"<empty{i}>") for i, t in enumerate(tokens)]
        sil = SEPARATOR if separator in tokens else names[blank]  # flashlight wants one; unused without it
        self.blank, self._sil = blank, names.index(sil)
        self._decode = ctc_decoder(
            lexicon=str(lexicon) if lexicon else None,
            tokens=names,
            lm=lm_path,
            nbest=1,
            beam_size=beam_size,
            lm_weight=lm_weight if lm_path else 0.0,
            word_score=word_score,
            sil_score=0.0,
            blank_token=names[blank],
            sil_token=sil,
            unk_word="<unk>",
            log_add=False,
        )

    def __call__(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> list[list[int]]:
        results = self._decode(log_probs.float().cpu().contiguous(), lengths.cpu().to(torch.int32))
        out = []
        for hyps in results:
            ids = [i for i in (hyps[0].tokens.tolist() if hyps else []) if i != self.blank]
            while ids and ids[0] == self._sil:  # flashlight frames every hypothesis with the word separator
                ids.pop(0)
            while ids and ids[-1] == self._sil:
                ids.pop()
            out.append(ids)
        return out
