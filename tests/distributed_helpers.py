"""Helpers of the tests that train with two processes under torchrun."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def native_convolutions() -> Iterator[None]:
    """oneDNN off, as in the worker processes: its batch-size-dependent summation order multiplies
    the rounding noise of splitting a batch over processes (see tests/test_train_distributed.py)."""
    previous = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = previous


def torchrun(*args: str) -> list[str]:
    """The command that runs ``args`` as two processes on this machine."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *args]
