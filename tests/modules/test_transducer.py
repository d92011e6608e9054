import torch

from nestbench.modules.transducer import JointNetwork, PredictionNetwork, greedy_transducer, transducer_loss


def test_loss_is_the_negative_log_likelihood_of_the_only_alignment_per_token():
    # one frame, one target token: the only path emits y at (t0, u0), then blank at (t0, u1)
    torch.manual_seed(0)
    pred, joint = PredictionNetwork(5, 6), JointNetwork(4, 6, 8, 5)
    enc, target = torch.randn(1, 1, 4), torch.tensor([[3]])
    logp = joint(enc, pred(target)).log_softmax(-1)[0, 0]  # [U + 1, V]
    expected = -(logp[0, 3] + logp[1, 0])
    got = transducer_loss(joint, pred, enc, torch.tensor([1]), target, torch.tensor([1]), blank=0)
    assert torch.allclose(got, expected, atol=1e-5)


def test_training_then_greedy_decoding_recovers_the_targets_of_each_length():
    torch.manual_seed(0)
    pred, joint = PredictionNetwork(8, 16), JointNetwork(12, 16, 20, 8)
    enc, enc_lengths = torch.randn(2, 15, 12), torch.tensor([15, 10])
    targets, target_lengths = torch.tensor([[6, 7, 7, 4, 7], [4, 5, 4, 0, 0]]), torch.tensor([5, 3])
    opt = torch.optim.Adam([*pred.parameters(), *joint.parameters()], 1e-2)
    for _ in range(200):
        loss = transducer_loss(joint, pred, enc, enc_lengths, targets, target_lengths, blank=0)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05
    assert greedy_transducer(joint, pred, enc, enc_lengths, blank=0) == [[6, 7, 7, 4, 7], [4, 5, 4]]


def test_padding_beyond_the_longest_lengths_changes_nothing():
    torch.manual_seed(0)
    pred, joint = PredictionNetwork(6, 8), JointNetwork(4, 8, 8, 6)
    enc, targets = torch.randn(2, 5, 4), torch.tensor([[3, 4], [5, 0]])
    lengths, target_lengths = torch.tensor([5, 3]), torch.tensor([2, 1])
    plain = transducer_loss(joint, pred, enc, lengths, targets, target_lengths, blank=0)
    padded_enc = torch.cat([enc, torch.randn(2, 3, 4)], 1)  # a batch padded past its longest utterance
    padded_targets = torch.cat([targets, torch.zeros(2, 2, dtype=torch.long)], 1)
    again = transducer_loss(joint, pred, padded_enc, lengths, padded_targets, target_lengths, blank=0)
    assert torch.allclose(plain, again)
