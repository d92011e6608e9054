"""Small FastConformers the project builds itself, for offline quickstarts and tests.

``make_tiny_nest`` only names one: ``<cache>/tiny/tiny_nest_d96_l2_…_s0.nemo``, a file name that
encodes every argument. Gin calls it while parsing a spec, so it must not write files or touch the
global RNG; the file is built when the checkpoint is first resolved (``nestbench.checkpoint``), from
its name alone, and goes through the same ``.nemo`` writing and loading path as the real NEST ones.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from ..validation import BindingError, at_least, between, checked
from .config import ConformerConfig, MelConfig
from .model import NestEncoder

_FORMAT = (
    "tiny_nest_d{d_model}_l{n_layers}_h{n_heads}_c{subsampling_conv_channels}_f{ff_expansion_factor}"
    "_k{conv_kernel_size}_p{dropout:g}_s{seed}.nemo"
)
_NAME = re.compile(
    r"tiny_nest_d(?P<d_model>\d+)_l(?P<n_layers>\d+)_h(?P<n_heads>\d+)_c(?P<subsampling_conv_channels>\d+)"
    r"_f(?P<ff_expansion_factor>\d+)_k(?P<conv_kernel_size>\d+)_p(?P<dropout>[0-9.e+-]+)_s(?P<seed>-?\d+)\.nemo"
)


@checked(
    d_model=at_least(1),
    n_layers=at_least(1),
    n_heads=at_least(1),
    subsampling_conv_channels=at_least(1),
    ff_expansion_factor=at_least(1),
    conv_kernel_size=at_least(1),
    dropout=between(0, 1, high_open=True),
)
def make_tiny_nest(
    cache_dir: str | Path | None = None,
    d_model: int = 96,
    n_layers: int = 4,
    n_heads: int = 4,
    subsampling_conv_channels: int = 64,
    ff_expansion_factor: int = 4,
    conv_kernel_size: int = 9,
    dropout: float = 0.1,
    seed: int = 0,
) -> str:
    """The checkpoint reference of a randomly initialised NEST-shaped encoder; nothing is written.

    It lies in ``<cache_dir>/tiny/`` (default: nestbench's cache) under a name that encodes every
    argument, so the same quickstart spec always finds the same encoder.
    """
    from ..checkpoint import default_cache_dir

    if d_model % n_heads:
        raise BindingError(
            f"make_tiny_nest.d_model = {d_model} is not divisible by make_tiny_nest.n_heads = {n_heads}",
            ("make_tiny_nest.d_model", "make_tiny_nest.n_heads"),
        )
    name = _FORMAT.format(
        d_model=d_model,
        n_layers=n_layers,
        n_heads=n_heads,
        subsampling_conv_channels=subsampling_conv_channels,
        ff_expansion_factor=ff_expansion_factor,
        conv_kernel_size=conv_kernel_size,
        dropout=dropout,
        seed=seed,
    )
    folder = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    return str(folder / "tiny" / name)


def tiny_nest_args(path: str | Path) -> dict | None:
    """The ``make_tiny_nest`` arguments a path names, or None if ``make_tiny_nest`` cannot have made it."""
    path = Path(path)
    match = _NAME.fullmatch(path.name)
    if match is None or path.parent.name != "tiny":
        return None
    try:
        args = {k: float(v) if k == "dropout" else int(v) for k, v in match.groupdict().items()}
    except ValueError:  # a dropout such as "1.2.3"
        return None
    return args if _FORMAT.format(**args) == path.name else None  # one spelling per encoder


def build_tiny_nest(path: str | Path) -> Path:
    """Write the encoder a ``make_tiny_nest`` reference names (kept if it exists) and return its path.

    The initialisation draws from a forked RNG seeded by the name, so the weights depend on the name
    only and the caller's random state is left as it was.
    """
    path = Path(path)
    args = tiny_nest_args(path)
    if args is None:
        raise ValueError(f"{path} is not a make_tiny_nest checkpoint name")
    if path.exists():
        return path
    from ..checkpoint import write_nemo

    dropout = args["dropout"]
    cfg = ConformerConfig(
        n_layers=args["n_layers"],
        d_model=args["d_model"],
        n_heads=args["n_heads"],
        subsampling_conv_channels=args["subsampling_conv_channels"],
        ff_expansion_factor=args["ff_expansion_factor"],
        conv_kernel_size=args["conv_kernel_size"],
        dropout=dropout,
        dropout_pre_encoder=dropout,
        dropout_att=dropout,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(args["seed"])
        model = NestEncoder(MelConfig(), cfg)
    return write_nemo(path, model.nemo_config(), model.nemo_state_dict())
