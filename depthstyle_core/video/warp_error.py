"""The warping error of a clip (Lai et al., "Learning Blind Video Temporal Consistency", ECCV 2018).

For frames ``i`` and ``j`` the flow ``F`` from ``i`` to ``j`` and ``B`` back are computed on the *input*
frames. Frame ``j`` of a clip is warped onto frame ``i`` along ``F`` (bilinear, clamped at the border); a
pixel is left out where ``F`` and ``B`` disagree or on a motion boundary (:func:`.warp.trusted`); the
error is the mean squared RGB difference (0..1, over the three channels) over the pixels kept. The same
number for the input frames is the clip's floor: what flow errors and lighting alone leave.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import InputImageError
from .flow import DISFlow
from .warp import trusted, warp

LONG_GAP = 10
"""Frames this far apart give the long-range error (when a clip has more than that many frames)."""


@dataclass(frozen=True)
class PairError:
    """The warping error between frames ``first`` and ``second`` (0-based), for each clip given, and
    the share of pixels the flow let the metric keep."""

    first: int
    second: int
    errors: tuple[float, ...]
    kept: float


def pair_warping_error(first: Tensor, second: Tensor, flow: Tensor, keep: Tensor) -> float:
    """Mean squared difference between ``first`` ``[1,3,H,W]`` and ``second`` warped onto it along
    ``flow`` (first -> second), over the pixels ``keep`` ``[1,1,H,W]`` marks (all of them when it marks
    none, as Lai et al.'s code does)."""
    difference = (warp(second.float(), flow) - first.float()).square() * keep
    kept = float(keep.sum()) * first.shape[1]
    return float(difference.sum()) / (kept or difference.numel())


def clip_warping_errors(
    inputs: Tensor | Sequence[Tensor],
    clips: Sequence[Tensor | Sequence[Tensor]],
    *,
    gap: int = 1,
    flow: DISFlow | None = None,
) -> list[PairError]:
    """The warping error of every pair of frames ``gap`` apart, for each clip in ``clips`` (stylised
    versions of ``inputs``; pass ``inputs`` itself among them for the floor), with flow on ``inputs``.

    Frames are ``[3,H,W]`` or ``[1,3,H,W]`` 0..1, one size per clip position; a clip must have as many
    frames as ``inputs``."""
    flow = flow or DISFlow()
    count = len(inputs)
    for index, clip in enumerate(clips):
        if len(clip) != count:
            raise InputImageError(f"clip {index + 1} has {len(clip)} frames, the input has {count}")
    if gap < 1:
        raise InputImageError(f"frames compared must be at least 1 apart, got {gap}")
    pairs = []
    for first in range(count - gap):
        second = first + gap
        a, b = _frame(inputs[first]), _frame(inputs[second])
        grey_a, grey_b = flow.grey(a), flow.grey(b)
        forward = flow.between(grey_a[0], grey_b[0])
        backward = flow.between(grey_b[0], grey_a[0])
        keep = trusted(forward, backward).float()
        errors = []
        for index, clip in enumerate(clips):
            x, y = _frame(clip[first]), _frame(clip[second])
            if x.shape[-2:] != a.shape[-2:] or y.shape[-2:] != a.shape[-2:]:
                raise InputImageError(
                    f"clip {index + 1}, frames {first + 1} and {second + 1}: size {tuple(x.shape[-2:])} "
                    f"and {tuple(y.shape[-2:])}, the input frames are {tuple(a.shape[-2:])}"
                )
            errors.append(pair_warping_error(x, y, forward, keep))
        pairs.append(PairError(first, second, tuple(errors), float(keep.mean())))
    return pairs


def mean_errors(pairs: Sequence[PairError]) -> tuple[float, ...]:
    """Each clip's error averaged over the pairs."""
    if not pairs:
        return ()
    return tuple(float(v) for v in torch.tensor([p.errors for p in pairs], dtype=torch.float64).mean(dim=0))


def _frame(frame: Tensor) -> Tensor:
    frame = frame if frame.ndim == 4 else frame.unsqueeze(0)
    if frame.ndim != 4 or frame.shape[0] != 1 or frame.shape[1] < 3:
        raise InputImageError(f"expected one RGB frame [3,H,W], got shape {tuple(frame.shape)}")
    return frame[:, :3].float().cpu()
