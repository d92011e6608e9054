import pytest
import torch

from nestbench.pretrain import RandomProjectionQuantizer


def _make(seed=0, **kw):
    torch.manual_seed(seed)
    return RandomProjectionQuantizer(**kw)


def test_nemo_keys_shapes_and_frozen():
    q = _make()
    shapes = {k: tuple(v.shape) for k, v in q.state_dict().items()}
    assert shapes == {"proj.weight": (16, 640), "codebooks": (1, 8192, 16)}
    assert q.codebooks.dtype == torch.float64
    torch.testing.assert_close(q.codebooks.norm(dim=-1), torch.ones(1, 8192, dtype=torch.float64))
    assert not any(p.requires_grad for p in q.parameters())


def test_ids_shape_and_determinism():
    feats = torch.randn(2, 80, 64)
    a, b = _make(seed=3), _make(seed=3)
    ids = a(feats)
    assert ids.shape == (2, 8, 1) and ids.dtype == torch.int64
    assert torch.equal(ids, a(feats)) and torch.equal(ids, b(feats))
    assert not torch.equal(ids, _make(seed=4)(feats))  # another random projection, other targets


def test_identical_steps_same_id_different_steps_different_ids():
    q = _make()
    feats = torch.randn(1, 80, 8 * 64)
    feats[..., 16:24] = feats[..., 0:8]  # step 2 is a copy of step 0
    ids = q(feats)[0, :, 0]
    assert ids[2] == ids[0]
    distinct = torch.cat([ids[:2], ids[3:]]).unique().numel()
    assert distinct >= 55  # 63 random steps among 8192 codes: almost all differ


def test_matches_explicit_l2_distances():
    """The expanded-distance argmin equals NeMo's explicit ``|x - c|`` argmin."""
    q = _make(num_classes=256, num_books=2, code_dim=4, feat_in=6, combine_time_steps=2)
    feats = torch.randn(3, 6, 20)
    x = feats.transpose(1, 2).reshape(3, 10, 12)
    x = torch.nn.functional.normalize(q.proj(x).view(3, 10, 2, 4), dim=-1)
    dist = (x.unsqueeze(-1) - q.codebooks.transpose(1, 2)[None, None]).norm(dim=-2)
    assert torch.equal(q(feats), dist.argmin(-1))


def test_squeeze_single_and_bad_length():
    q = _make(squeeze_single=True, num_classes=32)
    assert q(torch.randn(2, 80, 16)).shape == (2, 2)
    with pytest.raises(ValueError, match="multiple of combine_time_steps"):
        q(torch.randn(2, 80, 20))
