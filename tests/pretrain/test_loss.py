import math

import torch

from nestbench.pretrain import MultiMLMLoss


def _inputs(b=2, steps=6, classes=5, books=1, seed=0):
    gen = torch.Generator().manual_seed(seed)
    log_probs = torch.log_softmax(torch.randn(b, steps, classes, books, generator=gen), dim=2)
    targets = torch.randint(0, classes, (b, steps, books), generator=gen)
    return log_probs, targets


def _mask(b, feats, frames, masked):
    m = torch.zeros(b, feats, frames)
    for i, j in masked:
        m[i, :, j] = 1.0
    return m


def test_only_masked_steps_count():
    log_probs, targets = _inputs()
    masks = _mask(2, 3, 48, [(0, j) for j in range(8, 24)] + [(1, j) for j in range(40, 48)])  # steps (0,1) (0,2) (1,5)
    loss = MultiMLMLoss()
    out = loss(masks, log_probs, targets)
    want = -torch.stack([log_probs[0, 1, targets[0, 1, 0], 0], log_probs[0, 2, targets[0, 2, 0], 0],
                         log_probs[1, 5, targets[1, 5, 0], 0]]).mean()  # fmt: skip
    assert out.n_masked == 3
    torch.testing.assert_close(out.loss, want)
    other = log_probs.clone()
    other[0, 0] = torch.log_softmax(torch.randn(5, 1), 0)  # an unmasked step
    other[1, :5] = torch.log_softmax(torch.randn(5, 5, 1), 1)
    torch.testing.assert_close(loss(masks, other, targets).loss, out.loss)
    other[0, 1] = torch.log_softmax(torch.randn(5, 1), 0)  # a masked step
    assert not torch.allclose(loss(masks, other, targets).loss, out.loss)


def test_threshold_is_strictly_more_than_80_percent():
    log_probs, targets = _inputs(b=1)
    loss = MultiMLMLoss()
    seven = _mask(1, 2, 48, [(0, j) for j in range(1, 8)])  # 7/8 of step 0
    six = _mask(1, 2, 48, [(0, j) for j in range(2, 8)])  # 6/8 of step 0
    assert loss(seven, log_probs, targets).n_masked == 1
    assert loss(six, log_probs, targets).n_masked == 0
    five = MultiMLMLoss(combine_time_steps=5)  # exactly 0.8 is not enough (NeMo's ``mean > threshold``)
    assert five(_mask(1, 2, 30, [(0, j) for j in range(4)]), log_probs, targets).n_masked == 0
    assert five(_mask(1, 2, 30, [(0, j) for j in range(5)]), log_probs, targets).n_masked == 1


def test_nothing_masked_gives_zero_not_nan():
    log_probs, targets = _inputs()
    log_probs.requires_grad_(True)
    out = MultiMLMLoss()(torch.zeros(2, 3, 48), log_probs, targets)
    assert out.n_masked == 0 and out.loss.item() == 0.0 and math.isfinite(out.accuracy.item())
    out.loss.backward()
    assert torch.equal(log_probs.grad, torch.zeros_like(log_probs))


def test_accuracy_and_books_average():
    log_probs, targets = _inputs(books=2, classes=7)
    masks = torch.ones(2, 3, 48)
    perfect = torch.full_like(log_probs, -10.0).scatter(2, targets[:, :, None, :], 0.0)
    out = MultiMLMLoss(num_decoders=2)(masks, perfect, targets)
    assert out.accuracy.item() == 1.0 and out.n_masked == 12
    out = MultiMLMLoss(num_decoders=2)(masks, log_probs, targets)
    per_book = [-log_probs[..., h].gather(2, targets[..., h, None]).mean() for h in range(2)]
    torch.testing.assert_close(out.loss, torch.stack(per_book).mean())
