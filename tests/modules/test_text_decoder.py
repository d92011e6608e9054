"""TransformerTextDecoder: cached steps match the full pass, masking, causality, the loss helpers."""

import pytest
import torch
import torch.nn.functional as F

from nestbench.modules import TransformerTextDecoder, sequence_loss, teacher_forcing_batch


@pytest.fixture(autouse=True)
def one_thread():
    # Tiny ops: extra threads only add contention on a shared 2-core machine.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _decoder(**kwargs):
    torch.manual_seed(0)
    args = dict(vocab_size=13, d_model=32, n_layers=2, n_heads=4, ff_dim=64, max_len=20, memory_dim=24)
    return TransformerTextDecoder(**{**args, **kwargs}).eval()


def _memory(lengths, dim=24):
    torch.manual_seed(1)
    memory = torch.randn(len(lengths), max(lengths), dim)
    for i, n in enumerate(lengths):
        memory[i, n:] = 1e3  # garbage in the padding: masking must hide it
    return memory, torch.tensor(lengths)


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"positions": "learned"}, {"tie_embeddings": False}, {"memory_dim": None, "d_model": 24, "n_heads": 3}],
)
def test_cached_steps_equal_full_forward(kwargs):
    decoder = _decoder(**kwargs)
    memory, lengths = _memory([7, 3, 5], dim=kwargs.get("d_model", 24))
    tokens = torch.randint(0, 13, (3, 11))
    with torch.no_grad():
        full = decoder(tokens, memory, lengths)
        state = decoder.init_state(memory, lengths)
        steps = []
        for u in range(tokens.shape[1]):
            logits, state = decoder.step(tokens[:, u], state)
            steps.append(logits)
    assert full.shape == (3, 11, 13)
    torch.testing.assert_close(torch.stack(steps, 1), full, atol=1e-5, rtol=0)


def test_memory_padding_is_masked():
    decoder = _decoder()
    memory, lengths = _memory([6, 2])
    tokens = torch.randint(0, 13, (2, 5))
    with torch.no_grad():
        batched = decoder(tokens, memory, lengths)
        alone = decoder(tokens[1:], memory[1:, :2], lengths[1:])
    torch.testing.assert_close(batched[1:], alone, atol=1e-5, rtol=0)


def test_future_tokens_do_not_leak():
    decoder = _decoder()
    memory, lengths = _memory([4, 4])
    tokens = torch.randint(0, 13, (2, 8))
    changed = tokens.clone()
    changed[:, 5:] = (changed[:, 5:] + 1) % 13
    with torch.no_grad():
        a, b = decoder(tokens, memory, lengths), decoder(changed, memory, lengths)
    torch.testing.assert_close(a[:, :5], b[:, :5], atol=1e-6, rtol=0)
    assert not torch.allclose(a[:, 5:], b[:, 5:])


def test_state_index_select_reorders_hypotheses():
    decoder = _decoder()
    memory, lengths = _memory([5, 3, 4])
    tokens = torch.randint(0, 13, (3, 4))
    order = torch.tensor([2, 0, 0, 1])
    with torch.no_grad():
        state = decoder.init_state(memory, lengths)
        for u in range(3):
            _, state = decoder.step(tokens[:, u], state)
        picked, _ = decoder.step(tokens[order, 3], state.index_select(order))
        direct = decoder(tokens[order], memory[order], lengths[order])[:, 3]
    torch.testing.assert_close(picked, direct, atol=1e-5, rtol=0)


def test_positions_past_max_len_raise():
    decoder = _decoder(max_len=6)
    memory, lengths = _memory([3])
    with pytest.raises(ValueError, match="max_len"):
        decoder(torch.zeros(1, 7, dtype=torch.long), memory, lengths)


def test_training_mode_gradients_reach_everything():
    decoder = _decoder(dropout=0.1).train()
    memory, lengths = _memory([5, 3])
    memory = memory.clamp(max=5).requires_grad_()
    inputs, targets = teacher_forcing_batch([[5, 6, 7], [8]], bos_id=2, eos_id=3, pad_id=0)
    sequence_loss(decoder(inputs, memory, lengths), targets, pad_id=0, label_smoothing=0.1).backward()
    assert all(p.grad is not None for p in decoder.parameters())
    assert memory.grad[1, 3:].abs().sum() == 0  # padded frames get no gradient


def test_teacher_forcing_batch():
    inputs, targets = teacher_forcing_batch([[5, 6, 7], [8]], bos_id=2, eos_id=3, pad_id=0)
    assert inputs.tolist() == [[2, 5, 6, 7], [2, 8, 0, 0]]
    assert targets.tolist() == [[5, 6, 7, 3], [8, 3, 0, 0]]


def test_sequence_loss_ignores_pad_and_smooths():
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 9)
    targets = torch.tensor([[5, 6, 7, 3], [8, 3, 0, 0]])
    real = targets != 0
    expected = F.cross_entropy(logits[real], targets[real])
    torch.testing.assert_close(sequence_loss(logits, targets, pad_id=0), expected)
    # Smoothing mixes in the mean negative log-probability over the vocabulary.
    eps = 0.2
    uniform = -logits[real].log_softmax(-1).mean(-1).mean()
    smoothed = sequence_loss(logits, targets, pad_id=0, label_smoothing=eps)
    torch.testing.assert_close(smoothed, (1 - eps) * expected + eps * uniform)
    assert sequence_loss(logits, torch.zeros_like(targets), pad_id=0) == 0
