"""Decoding and scoring run with one torch thread wherever they run (in worker processes or in
the run's own process): several CPU kernels (bilinear resizing, long sums) round differently
with another thread count, and a record must not depend on where its image was decoded or
scored. Only the network passes use torch's thread setting."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch


@contextmanager
def torch_threads(n: int = 1) -> Iterator[None]:
    old = torch.get_num_threads()
    if old == n:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)
