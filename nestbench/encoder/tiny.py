"""Small FastConformers the project builds itself, for offline quickstarts and tests.

They go through the same ``.nemo`` writing and loading path as the real NEST checkpoints.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .config import ConformerConfig, MelConfig
from .model import NestEncoder


def make_tiny_nest(
    path: str | None = None,
    d_model: int = 96,
    n_layers: int = 4,
    n_heads: int = 4,
    subsampling_conv_channels: int = 64,
    ff_expansion_factor: int = 4,
    conv_kernel_size: int = 9,
    dropout: float = 0.1,
    seed: int = 0,
) -> str:
    """Write a randomly initialised NEST-shaped ``.nemo`` (kept if it exists) and return its path.

    Without ``path`` it goes to ``<cache>/tiny/`` under a name that encodes every argument, so
    the same quickstart spec always finds the same encoder.
    """
    from ..checkpoint import default_cache_dir, write_nemo

    if path is None:
        name = f"tiny_nest_d{d_model}_l{n_layers}_h{n_heads}_c{subsampling_conv_channels}_f{ff_expansion_factor}"
        name += f"_k{conv_kernel_size}_p{dropout:g}_s{seed}.nemo"
        path = str(default_cache_dir() / "tiny" / name)
    target = Path(path)
    if target.exists():
        return str(target)

    torch.manual_seed(seed)
    cfg = ConformerConfig(
        n_layers=n_layers,
        d_model=d_model,
        n_heads=n_heads,
        subsampling_conv_channels=subsampling_conv_channels,
        ff_expansion_factor=ff_expansion_factor,
        conv_kernel_size=conv_kernel_size,
        dropout=dropout,
        dropout_pre_encoder=dropout,
        dropout_att=dropout,
    )
    model = NestEncoder(MelConfig(), cfg)
    write_nemo(target, model.nemo_config(), model.nemo_state_dict())
    return str(target)
