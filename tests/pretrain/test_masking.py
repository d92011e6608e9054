import pytest
import torch

from nestbench.pretrain import RandomBlockMasking


@pytest.mark.parametrize("kw", [{"block_size": 0}, {"mask_prob": 0.0}])
def test_config_that_masks_nothing_is_refused(kw):
    with pytest.raises(ValueError, match="masks nothing"):
        RandomBlockMasking(feat_in=4, **kw)


def test_nemo_key_and_frozen_by_default():
    m = RandomBlockMasking()
    assert {k: tuple(v.shape) for k, v in m.state_dict().items()} == {"mask_embedding": (80,)}
    assert not m.mask_embedding.requires_grad  # NEST's config: masking.freeze = true


def test_fraction_masked_matches_expectation():
    m = RandomBlockMasking(feat_in=2)
    b, t, p, block = 2048, 1000, 0.01, 40
    lengths = torch.full((b,), t)
    mask = m.frame_mask(lengths, t, torch.Generator().manual_seed(0)).float()
    # frame j is covered by the starts s in [j-39, j] with s < t - 40, each a start with prob p
    j = torch.arange(t)
    n_starts = (torch.minimum(j, torch.tensor(t - block - 1)) - (j - block + 1).clamp(min=0) + 1).clamp(min=0)
    expected = 1 - (1 - p) ** n_starts.double()
    assert abs(mask.mean().item() - expected.mean().item()) < 0.01
    assert abs(mask[:, 100:900].mean().item() - (1 - 0.99**40)) < 0.01  # ~33 % of interior frames


def test_blocks_are_40_frames_and_stay_inside_the_utterance():
    m = RandomBlockMasking(feat_in=2, mask_prob=0.003)
    lengths = torch.randint(300, 1000, (128,))
    mask = m.frame_mask(lengths, 1000, torch.Generator().manual_seed(1))
    runs = []
    for row, n in zip(mask.tolist(), lengths.tolist(), strict=True):
        assert not any(row[n:])
        run = 0
        for v in [*row, False]:
            if v:
                run += 1
            elif run:
                runs.append(run)
                run = 0
    assert runs and min(runs) >= 40
    assert max(set(runs), key=runs.count) == 40


def test_short_utterance_gets_one_short_block():
    m = RandomBlockMasking(feat_in=2)
    mask = m.frame_mask(torch.tensor([40, 5]), 48, torch.Generator().manual_seed(0))
    assert mask[0].nonzero().flatten().tolist() == list(range(8))  # 40 >= 0.8 * 40
    assert mask[1].nonzero().flatten().tolist() == list(range(5))


def test_deterministic_under_generator_and_replaces_with_embedding():
    m = RandomBlockMasking(feat_in=3, mask_prob=0.05)
    feats, lengths = torch.randn(4, 3, 200), torch.tensor([200, 180, 150, 120])
    out1, mask1 = m(feats, lengths, torch.Generator().manual_seed(7))
    out2, mask2 = m(feats, lengths, torch.Generator().manual_seed(7))
    _, mask3 = m(feats, lengths, torch.Generator().manual_seed(8))
    assert torch.equal(out1, out2) and torch.equal(mask1, mask2) and not torch.equal(mask1, mask3)
    assert mask1.shape == feats.shape and set(mask1.unique().tolist()) <= {0.0, 1.0}
    hit = mask1.bool()
    assert hit.any()
    assert torch.equal(out1[~hit], feats[~hit])
    assert torch.equal(out1, torch.where(hit, m.mask_embedding[None, :, None].expand_as(feats), feats))


def test_unfrozen_mask_embedding_is_learned():
    m = RandomBlockMasking(feat_in=3, mask_prob=0.05, freeze=False)
    out, mask = m(torch.randn(2, 3, 200), torch.tensor([200, 200]), torch.Generator().manual_seed(0))
    (out * mask).sum().backward()
    assert m.mask_embedding.grad is not None and m.mask_embedding.grad.abs().sum() > 0
