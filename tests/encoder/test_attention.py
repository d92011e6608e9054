"""Relative-position attention against a literal transcription of NeMo's formulation."""

import math

import pytest
import torch

from nestbench.encoder.attention import RelPositionSelfAttention, relative_positions


def _nemo_style(att: RelPositionSelfAttention, x, pe, pad):
    """Scores via NeMo's pad-and-reshape rel_shift, query+key masking, softmax, masked_fill(0)."""
    b, t, d = x.shape
    h, dk = att.h, att.d_k
    q = att.linear_q(x).view(b, t, h, dk)
    k = att.linear_k(x).view(b, t, h, dk).transpose(1, 2)
    v = att.linear_v(x).view(b, t, h, dk).transpose(1, 2)
    p = att.linear_pos(pe).view(1, -1, h, dk).transpose(1, 2)
    qu = (q + att.pos_bias_u).transpose(1, 2)
    qv = (q + att.pos_bias_v).transpose(1, 2)
    bd = torch.matmul(qv, p.transpose(-2, -1))
    _, _, ql, pl = bd.shape
    bd = torch.nn.functional.pad(bd, (1, 0)).view(b, h, -1, ql)[:, :, 1:].view(b, h, ql, pl)[..., :t]
    scores = (torch.matmul(qu, k.transpose(-2, -1)) + bd) / math.sqrt(dk)
    mask = (pad[:, None, :] | pad[:, :, None])[:, None]
    attn = torch.softmax(scores.masked_fill(mask, -10000.0), -1).masked_fill(mask, 0.0)
    return att.linear_out(torch.matmul(attn, v).transpose(1, 2).reshape(b, t, d))


@pytest.mark.parametrize("block_rows", [None, 1, 5, 16])
def test_matches_nemo_formulation_full_and_blocked(block_rows):
    torch.manual_seed(0)
    b, t, d, h = 2, 37, 64, 4
    att = RelPositionSelfAttention(d, h, dropout=0.0).eval()
    with torch.no_grad():
        att.pos_bias_u.normal_()
        att.pos_bias_v.normal_()
    if block_rows:
        att.block_elements = b * h * 2 * t * block_rows
    x = torch.randn(b, t, d)
    pe = relative_positions(t, d, x.device, x.dtype)
    pad = torch.zeros(b, t, dtype=torch.bool)
    pad[1, 29:] = True
    with torch.no_grad():
        ref = _nemo_style(att, x, pe, pad)
        out = att(x, pe, pad)
    valid = ~pad
    assert (ref - out)[valid].abs().max() < 1e-5
    assert torch.isfinite(out).all()  # padded query rows stay finite too


def test_limited_context_blocks_far_keys():
    torch.manual_seed(1)
    t, d = 20, 32
    att = RelPositionSelfAttention(d, 2, dropout=0.0).eval()
    x = torch.randn(1, t, d)
    pe = relative_positions(t, d, x.device, x.dtype)
    with torch.no_grad():
        base = att(x, pe, None, context=(2, 0))
        x2 = x.clone()
        x2[0, 10:] += 5.0  # future frames change
        moved = att(x2, pe, None, context=(2, 0))
    # causal with 2 frames of left context: outputs before frame 10 cannot see the change
    assert torch.allclose(base[0, :10], moved[0, :10], atol=1e-6)
    assert not torch.allclose(base[0, 10:], moved[0, 10:])
