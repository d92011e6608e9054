"""PyTorch CPU threads for the length of a block, the caller's setting restored after."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """``n`` threads inside the block (``None``: leave PyTorch's choice). Runs pin it because CPU results
    depend on it; short synthesis resamplings pin it to 1 because OpenMP's spin-waiting made them ten
    times slower on a busy 2-core machine."""
    import torch

    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
