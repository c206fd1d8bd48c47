"""Helpers of the tests that train with two processes under torchrun."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Sequence
from copy import deepcopy

import torch
from torch import nn


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


def nudged(module: nn.Module, seed: int = 0) -> nn.Module:
    """A copy of ``module`` with every weight moved by one unit in the last place, up or down at random:
    the same network up to float32 rounding. A run with it shows how far rounding alone moves a run."""
    copy = deepcopy(module)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for weight in copy.parameters():
            up = torch.randint(0, 2, weight.shape, generator=generator, dtype=torch.bool)
            toward = torch.where(up, torch.inf, -torch.inf).to(weight.dtype)
            weight.copy_(torch.nextafter(weight, toward))
    return copy


def rounding_floor(nudged_records: list[dict], records: list[dict], terms: Sequence[str]) -> dict[int, float]:
    """Per logged step, the largest relative difference of any loss term between a run with nudged
    weights and the same run without: how far rounding alone has moved the losses by that step."""
    return {
        ours["step"]: max(abs(ours[t] - theirs[t]) / abs(theirs[t]) for t in terms)
        for ours, theirs in zip(nudged_records, records, strict=True)
    }
