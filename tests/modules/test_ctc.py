import math

import torch

from nestbench.modules.ctc import CtcBeamDecoder, greedy_ctc, write_lexicon

TOKENS = ["<pad>", "<unk>", "<bos>", "<eos>", " ", "a", "b"]


def _frames(path: list[int], confidence: float = 0.9) -> torch.Tensor:
    """Log-probabilities [1, T, V] that put ``confidence`` on each frame's token of ``path``."""
    rest = (1 - confidence) / (len(TOKENS) - 1)
    probs = torch.full((1, len(path), len(TOKENS)), rest)
    for t, tok in enumerate(path):
        probs[0, t, tok] = confidence
    return probs.log()


def test_greedy_collapses_repeats_and_drops_blanks_within_each_length():
    lp = torch.cat([_frames([5, 5, 0, 5, 6, 6, 0, 4]), _frames([6, 0, 0, 6, 5, 5, 5, 5])])
    assert greedy_ctc(lp, torch.tensor([8, 4]), blank=0) == [[5, 5, 6, 4], [6, 6]]


def test_beam_agrees_with_greedy_on_confident_frames():
    lp = _frames([5, 0, 6, 4, 0, 5, 5, 6])
    beam = CtcBeamDecoder(TOKENS, blank=0, beam_size=8)
    assert beam(lp, torch.tensor([8])) == greedy_ctc(lp, torch.tensor([8]), 0) == [[5, 6, 4, 5, 6]]


def test_a_kenlm_model_moves_the_beam_towards_likely_words(tmp_path):
    # the acoustics slightly prefer "b", the LM strongly prefers "a": the LM's weight decides
    lp = torch.full((1, 3, len(TOKENS)), 1e-4)
    lp[0, 0, 0], lp[0, 2, 4] = 0.9, 0.9  # blank, the word, then the word separator
    lp[0, 1, 0], lp[0, 1, 6], lp[0, 1, 5] = 0.01, 0.5, 0.45
    lp = (lp / lp.sum(-1, keepdim=True)).log()
    arpa = tmp_path / "lm.arpa"
    a, b, end = (f"{math.log10(p):.4f}" for p in (0.68, 0.01, 0.3))
    arpa.write_text(  # KenLM wants at least a bigram model
        "\\data\\\nngram 1=5\nngram 2=2\n\n\\1-grams:\n"
        f"-2\t<unk>\t0\n-99\t<s>\t0\n{end}\t</s>\t0\n{a}\ta\t0\n{b}\tb\t0\n\n"
        f"\\2-grams:\n{a}\t<s> a\n{b}\t<s> b\n\n\\end\\\n"
    )
    lexicon = write_lexicon(["a", "b"], lambda w: [*w, "|"], tmp_path / "lexicon.txt")
    plain = CtcBeamDecoder(TOKENS, blank=0, beam_size=8)
    with_lm = CtcBeamDecoder(TOKENS, blank=0, beam_size=8, lm_path=str(arpa), lm_weight=2.0, lexicon=lexicon)
    assert plain(lp, torch.tensor([3])) == [[6]]
    assert with_lm(lp, torch.tensor([3])) == [[5]]


def test_a_lexicon_spells_each_distinct_word_once(tmp_path):
    lexicon = write_lexicon(["ab", "a", "ab", ""], lambda w: ["▁a", "b"][: len(w)], tmp_path / "lex.txt")
    assert lexicon.read_text().splitlines() == ["a\t▁a", "ab\t▁a b"]
