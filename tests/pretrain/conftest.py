"""Tiny NEST pieces for the pretraining tests (seconds on CPU)."""

import math

import pytest
import torch

from nestbench.encoder import ConformerConfig, MelConfig, NestEncoder
from nestbench.pretrain import NestObjective

SR = 16000


def _sines(batch: int, seconds: float = 1.0, seed: int = 0) -> torch.Tensor:
    """[B, S] sums of three sines with a slow amplitude envelope: speech-ish, deterministic."""
    gen = torch.Generator().manual_seed(seed)
    t = torch.arange(int(seconds * SR)) / SR
    freqs = 100 + 1500 * torch.rand(batch, 3, generator=gen)
    phases = 2 * math.pi * torch.rand(batch, 3, generator=gen)
    wave = torch.sin(2 * math.pi * freqs[:, :, None] * t + phases[:, :, None]).sum(1)
    envelope = 0.6 + 0.4 * torch.sin(2 * math.pi * (1 + 3 * torch.rand(batch, 1, generator=gen)) * t)
    return 0.1 * wave * envelope


def _tiny_encoder(seed: int = 0) -> NestEncoder:
    cfg = ConformerConfig(
        n_layers=1,
        d_model=32,
        n_heads=2,
        subsampling_conv_channels=8,
        dropout=0.0,
        dropout_pre_encoder=0.0,
        dropout_att=0.0,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return NestEncoder(MelConfig(dither=0.0), cfg)


def _tiny_objective(seed: int = 0, num_classes: int = 64, **kw) -> NestObjective:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return NestObjective(_tiny_encoder(seed), num_classes=num_classes, **kw)


@pytest.fixture
def audio() -> tuple[torch.Tensor, torch.Tensor]:
    """Four utterances of 3 s or less: long enough that p=0.01 block starts mask some steps in each."""
    wave = _sines(4, 3.0)
    lengths = torch.tensor([48000, 48000, 42000, 36000])
    wave[2, 42000:] = 0
    wave[3, 36000:] = 0
    return wave, lengths


@pytest.fixture
def sines():
    """``sines(batch, seconds, seed)`` -> [B, S] synthetic audio."""
    return _sines


@pytest.fixture
def tiny_objective():
    """``tiny_objective(seed=0, num_classes=64, **parts)`` -> a 1-layer, d_model 32 ``NestObjective``."""
    return _tiny_objective
