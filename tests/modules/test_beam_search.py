"""Greedy and beam search: against each other, against rescoring, on hand-set and trained decoders."""

import pytest
import torch

from nestbench.modules import TransformerTextDecoder, beam_search, greedy_decode, sequence_loss, teacher_forcing_batch
from nestbench.text import CharTokenizer

PAD, BOS, EOS, A, B = 0, 2, 3, 4, 5  # 6-token vocabulary of the hand-set decoders (1 = unk)


@pytest.fixture(autouse=True)
def one_thread():
    # Tiny ops: extra threads only add contention on a shared 2-core machine.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class _Stateless:
    def index_select(self, index):
        return self


class MarkovDecoder:
    """Next-token distribution set by hand from the previous token alone; the memory is ignored."""

    def __init__(self, rows: dict[int, dict[int, float]], max_len: int = 16):
        self.max_len = max_len
        probs = torch.full((6, 6), 1 / 6)  # rows never reached with probability > 0: anything valid
        for prev, nxt in rows.items():
            probs[prev] = 0.0
            for token, p in nxt.items():
                probs[prev, token] = p
        self.logits = probs.log()

    def init_state(self, memory, memory_lengths):
        return _Stateless()

    def step(self, tokens, state):
        return self.logits[tokens], state


def _search(decoder, batch=1, **kwargs):
    memory, lengths = torch.zeros(batch, 1, 1), torch.ones(batch, dtype=torch.long)
    return beam_search(decoder, memory, lengths, BOS, EOS, return_scores=True, **kwargs)


def _greedy(decoder, batch=1, **kwargs):
    memory, lengths = torch.zeros(batch, 1, 1), torch.ones(batch, dtype=torch.long)
    return greedy_decode(decoder, memory, lengths, BOS, EOS, return_scores=True, **kwargs)


def test_beam_finds_strictly_better_sequence_than_greedy():
    # Greedy takes A (0.6) then must end with eos at 0.4: 0.24. "B eos" is 0.4 x 0.9 = 0.36.
    decoder = MarkovDecoder({BOS: {A: 0.6, B: 0.4}, A: {EOS: 0.4, A: 0.3, B: 0.3}, B: {EOS: 0.9, A: 0.05, B: 0.05}})
    (greedy,), (greedy_score,) = _greedy(decoder)
    (best,), (best_score,) = _search(decoder, beam_size=2)
    assert greedy == [A] and greedy_score == pytest.approx(torch.tensor(0.24).log().item())
    assert best == [B] and best_score == pytest.approx(torch.tensor(0.36).log().item())
    assert _search(decoder, beam_size=1) == _greedy(decoder)


def test_immediate_eos_gives_empty_hypothesis():
    decoder = MarkovDecoder({BOS: {EOS: 0.9, A: 0.1}, A: {EOS: 1.0}})
    assert _greedy(decoder, batch=2)[0] == [[], []]
    assert _search(decoder, batch=2, beam_size=3)[0] == [[], []]


def test_max_len_cuts_off_hypotheses_that_never_end():
    decoder = MarkovDecoder({BOS: {A: 0.7, B: 0.3}, A: {A: 0.8, B: 0.2}, B: {A: 0.5, B: 0.5}}, max_len=16)
    assert _greedy(decoder, max_len=5)[0] == [[A] * 5]
    (hyp,), (score,) = _search(decoder, beam_size=3, max_len=5)
    assert hyp == [A] * 5 and score == pytest.approx(torch.tensor(0.7 * 0.8**4).log().item())
    assert len(_greedy(decoder)[0][0]) == 15  # default: every position after bos
    with pytest.raises(ValueError, match="max_len"):
        _search(decoder, max_len=16)


def test_finished_hypothesis_beats_a_cut_off_one():
    # "A A A ..." is likelier up to the cut-off than "eos" now, but only "eos" is a complete output.
    decoder = MarkovDecoder({BOS: {A: 0.9, EOS: 0.1}, A: {A: 0.99, EOS: 0.01}})
    assert _search(decoder, beam_size=2, max_len=4)[0] == [[]]


def test_length_penalty_favours_longer_hypotheses():
    # "eos" has 0.5, "A eos" 0.475: raw log-prob prefers the empty output, GNMT alpha=1 the longer one.
    decoder = MarkovDecoder({BOS: {EOS: 0.5, A: 0.5}, A: {EOS: 0.95, A: 0.05}})
    assert _search(decoder, beam_size=2)[0] == [[]]
    (hyp,), (score,) = _search(decoder, beam_size=2, length_penalty=1.0)
    assert hyp == [A] and score == pytest.approx(torch.tensor(0.475).log().item() / (7 / 6))


def _random_decoder(seed: int, vocab: int = 10) -> TransformerTextDecoder:
    torch.manual_seed(seed)
    decoder = TransformerTextDecoder(vocab, d_model=32, n_heads=4, ff_dim=64, max_len=24, memory_dim=12, dropout=0.0)
    with torch.no_grad():  # peakier, varied next-token distributions than at init, so eos does come up
        decoder.output.weight.mul_(4)
        decoder.output.bias.normal_(0, 1.5)
    return decoder.eval()


def _random_memory(lengths, seed=1):
    torch.manual_seed(seed)
    memory = torch.randn(len(lengths), max(lengths), 12)
    for i, n in enumerate(lengths):
        memory[i, n:] = 1e3
    return memory, torch.tensor(lengths)


def _log_prob(decoder, memory, lengths, hyps, max_len):
    """Full-forward log-probability of each ``hyp + eos`` (of ``hyp`` if cut off at ``max_len``).

    Independent of the search's cache; pad -1 keeps real tokens that happen to be pad_id 0.
    """
    inputs, targets = teacher_forcing_batch(hyps, BOS, EOS, pad_id=-1)
    for i, hyp in enumerate(hyps):
        if len(hyp) == max_len:
            targets[i, max_len] = -1
    with torch.no_grad():
        logp = decoder(inputs.clamp_min(0), memory, lengths).log_softmax(-1)
    picked = logp.gather(2, targets.clamp_min(0)[..., None])[..., 0]
    return (picked * (targets >= 0)).sum(1).tolist()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_beam_size_one_is_greedy(seed):
    decoder = _random_decoder(seed)
    memory, lengths = _random_memory([7, 3, 5, 6], seed)
    greedy, greedy_scores = greedy_decode(decoder, memory, lengths, BOS, EOS, max_len=15, return_scores=True)
    beam, beam_scores = beam_search(decoder, memory, lengths, BOS, EOS, beam_size=1, max_len=15, return_scores=True)
    assert beam == greedy
    assert beam_scores == pytest.approx(greedy_scores, abs=1e-5)


@pytest.mark.parametrize("seed", [3, 4, 5])
def test_beam_scores_are_the_sequences_log_probs_and_beat_greedy(seed):
    decoder = _random_decoder(seed)
    memory, lengths = _random_memory([7, 3, 5, 6], seed)
    beam, scores = beam_search(decoder, memory, lengths, BOS, EOS, beam_size=4, max_len=20, return_scores=True)
    greedy, greedy_scores = greedy_decode(decoder, memory, lengths, BOS, EOS, max_len=20, return_scores=True)
    assert scores == pytest.approx(_log_prob(decoder, memory, lengths, beam, max_len=20), abs=1e-4)
    assert all(s >= g - 1e-5 for s, g in zip(scores, greedy_scores, strict=True))


def test_batched_search_equals_one_by_one():
    decoder = _random_decoder(6)
    memory, lengths = _random_memory([9, 4, 6, 2])
    for search in (greedy_decode, beam_search):
        together, scores = search(decoder, memory, lengths, BOS, EOS, max_len=12, return_scores=True)
        for i, n in enumerate(lengths.tolist()):
            alone, alone_score = search(
                decoder, memory[i : i + 1, :n], lengths[i : i + 1], BOS, EOS, max_len=12, return_scores=True
            )
            assert alone == [together[i]]
            assert alone_score[0] == pytest.approx(scores[i], abs=1e-4)


def test_a_start_token_per_utterance_equals_decoding_each_with_its_own():
    decoder = _random_decoder(7)
    memory, lengths = _random_memory([5, 5, 5])
    starts = torch.tensor([BOS, 5, 6])  # e.g. target-language tokens
    for search in (greedy_decode, beam_search):
        mixed, scores = search(decoder, memory, lengths, starts, EOS, max_len=10, return_scores=True)
        for i, start in enumerate(starts.tolist()):
            alone, alone_score = search(
                decoder, memory[i : i + 1], lengths[i : i + 1], start, EOS, max_len=10, return_scores=True
            )
            assert alone == [mixed[i]] and alone_score[0] == pytest.approx(scores[i], abs=1e-4)
    inputs, _ = teacher_forcing_batch([[7, 8], [9]], [5, 6], EOS, pad_id=0)
    assert inputs.tolist() == [[5, 7, 8], [6, 9, 0]]


TARGETS = [
    "lights on",
    "lights off",
    "play jazz",
    "wake me at seven",
    "weather today",
    "call mom",
    "set a timer",
    "volume up",
]


@pytest.fixture(scope="module")
def trained():
    """A decoder taught to map 8 frozen random memories (of various lengths) to 8 strings."""
    tokenizer = CharTokenizer.build(TARGETS)
    torch.manual_seed(0)
    lengths = torch.tensor([6, 3, 4, 5, 6, 2, 3, 6])
    memory = torch.randn(8, 6, 16)
    for i, n in enumerate(lengths.tolist()):
        memory[i, n:] = 1e3
    decoder = TransformerTextDecoder(
        tokenizer.vocab_size, d_model=64, n_heads=4, ff_dim=128, max_len=32, memory_dim=16, dropout=0.0
    )
    inputs, targets = teacher_forcing_batch([tokenizer.encode(t) for t in TARGETS], BOS, EOS, tokenizer.pad_id)
    optimizer = torch.optim.Adam(decoder.parameters(), lr=3e-3)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    for _ in range(200):
        loss = sequence_loss(decoder(inputs, memory, lengths), targets, tokenizer.pad_id)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    torch.set_num_threads(threads)
    return tokenizer, decoder.eval(), memory, lengths


def test_trained_decoder_reproduces_targets(trained):
    tokenizer, decoder, memory, lengths = trained
    assert (tokenizer.bos_id, tokenizer.eos_id) == (BOS, EOS)
    greedy = greedy_decode(decoder, memory, lengths, BOS, EOS, max_len=24)
    beam, scores = beam_search(decoder, memory, lengths, BOS, EOS, beam_size=4, max_len=24, return_scores=True)
    assert [tokenizer.decode(h) for h in greedy] == TARGETS
    assert [tokenizer.decode(h) for h in beam] == TARGETS
    assert min(scores) > -0.1  # confident: it learnt them


def test_trained_decoder_beam_at_least_greedy_on_unseen_memory(trained):
    tokenizer, decoder, _, _ = trained
    torch.manual_seed(7)
    memory, lengths = torch.randn(6, 5, 16), torch.tensor([5, 4, 3, 5, 2, 5])
    greedy, greedy_scores = greedy_decode(decoder, memory, lengths, BOS, EOS, max_len=24, return_scores=True)
    beam, scores = beam_search(decoder, memory, lengths, BOS, EOS, beam_size=5, max_len=24, return_scores=True)
    assert all(s >= g - 1e-5 for s, g in zip(scores, greedy_scores, strict=True))
    assert scores == pytest.approx(_log_prob(decoder, memory, lengths, beam, max_len=24), abs=1e-4)
