"""How many CPU threads torch computes with, for a block of code.

On a machine shared with other busy processes, torch's OpenMP workers that
lose their core keep the others waiting at every parallel region, and the
biLM's many small per-step operations each pay that wait: measured here with
the other core busy, the small biLM ran 15-30x slower with 2 threads, while one
thread only loses the second core. ``threads`` settings (component, ``embed``,
``pretrain``) let a user choose; ``0`` leaves torch's own setting.
"""
from contextlib import contextmanager
from typing import Iterator

import torch


def check_threads(value: object, what: str = "threads") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"Invalid {what} {value!r}: give a number of CPU threads >= 1, or 0 for torch's default.")
    return value


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` torch CPU threads (0: unchanged), then restore the previous number."""
    if not n:
        yield
        return
    before = torch.get_num_threads()
    if before != n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if before != n:
            torch.set_num_threads(before)
