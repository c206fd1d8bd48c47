"""The warping error of a clip (Lai et al., "Learning Blind Video Temporal Consistency", ECCV 2018).

For frames ``i`` and ``j`` the flow ``F`` from ``i`` to ``j`` and ``B`` back are computed on the *input*
frames. Frame ``j`` of a clip is warped onto frame ``i`` along ``F`` (bilinear, clamped at the border); a
pixel is left out where ``F`` and ``B`` disagree or on a motion boundary (:func:`.warp.trusted`); the
error is the mean squared RGB difference (0..1, over the three channels) over the pixels kept. The same
number for the input frames is the clip's floor: what flow errors and lighting alone leave.
"""

from __future__ import annotations

from collections import deque
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
    """The warping error between frames ``first`` and ``second`` (0-based): the input's own first, then
    each clip's; and the share of pixels the flow let the metric keep."""

    first: int
    second: int
    errors: tuple[float, ...]
    kept: float


def pair_warping_error(first: Tensor, second: Tensor, flow: Tensor, keep: Tensor) -> float:
    """Mean squared difference between ``first`` ``[1,3,H,W]`` and ``second`` warped onto it along
    ``flow`` (first -> second), over the pixels ``keep`` ``[1,1,H,W]`` marks. When it marks none the
    error is 0: Lai et al.'s code then divides the (all-masked) sum by every pixel instead."""
    difference = (warp(second.float(), flow) - first.float()).square() * keep
    kept = float(keep.sum()) * first.shape[1]
    return float(difference.sum()) / (kept or difference.numel())


class WarpingErrorMeter:
    """The warping errors of clips fed one frame at a time (memory: ``max(gaps) + 1`` frames): each call
    of :meth:`add` takes the next input frame and the same frame of every clip, and returns the pairs it
    completed. Every pair ``gap`` apart is measured, for each gap in ``gaps``."""

    def __init__(self, clips: int, gaps: Sequence[int] = (1,), flow: DISFlow | None = None) -> None:
        if any(gap < 1 for gap in gaps):
            raise InputImageError(f"frames compared must be at least 1 apart, got {list(gaps)}")
        self.clips = clips
        self.gaps = tuple(gaps)
        self.flow = flow or DISFlow()
        self.pairs: dict[int, list[PairError]] = {gap: [] for gap in self.gaps}
        self._recent: deque[tuple[int, Tensor, object, tuple[Tensor, ...]]] = deque(maxlen=max(self.gaps) + 1)
        self._count = 0

    def add(self, input_frame: Tensor, *clip_frames: Tensor) -> list[PairError]:
        """Take the next frame (``[3,H,W]`` or ``[1,3,H,W]`` 0..1) of the input and of each clip."""
        if len(clip_frames) != self.clips:
            raise InputImageError(
                f"expected a frame of each of the {self.clips} clips, got {len(clip_frames)}"
            )
        index = self._count
        current = _frame(input_frame)
        frames = tuple(_frame(frame) for frame in clip_frames)
        for clip, frame in enumerate(frames, start=1):
            if frame.shape[-2:] != current.shape[-2:]:
                raise InputImageError(
                    f"clip {clip}, frame {index + 1}: size {tuple(frame.shape[-2:])}, the input frame is "
                    f"{tuple(current.shape[-2:])}"
                )
        if self._recent and self._recent[-1][1].shape != current.shape:
            raise InputImageError(f"input frame {index + 1} has another size than the frames before it")
        grey = self.flow.grey(current)[0]
        done = []
        for earlier, earlier_input, earlier_grey, earlier_frames in self._recent:
            gap = index - earlier
            if gap not in self.gaps:
                continue
            forward = self.flow.between(earlier_grey, grey)
            keep = trusted(forward, self.flow.between(grey, earlier_grey)).float()
            errors = tuple(
                pair_warping_error(a, b, forward, keep)
                for a, b in zip((earlier_input, *earlier_frames), (current, *frames), strict=True)
            )
            pair = PairError(earlier, index, errors, float(keep.mean()))
            self.pairs[gap].append(pair)
            done.append(pair)
        self._recent.append((index, current, grey, frames))
        self._count += 1
        return done


def clip_warping_errors(
    inputs: Tensor | Sequence[Tensor],
    clips: Sequence[Tensor | Sequence[Tensor]],
    *,
    gap: int = 1,
    flow: DISFlow | None = None,
) -> list[PairError]:
    """The warping error of every pair of frames ``gap`` apart for each clip in ``clips`` (stylised
    versions of ``inputs``), with flow on ``inputs``; each pair's errors list the input's own (the floor)
    first, then the clips'. Frames are ``[3,H,W]`` or ``[1,3,H,W]`` 0..1."""
    count = len(inputs)
    for index, clip in enumerate(clips):
        if len(clip) != count:
            raise InputImageError(f"clip {index + 1} has {len(clip)} frames, the input has {count}")
    meter = WarpingErrorMeter(len(clips), (gap,), flow)
    for index in range(count):
        meter.add(inputs[index], *(clip[index] for clip in clips))
    return meter.pairs[gap]


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


def warping_summary(meter: WarpingErrorMeter) -> dict[str, object]:
    """What a report shows of a stylised clip measured by ``meter`` (one clip, gaps 1 and maybe
    :data:`LONG_GAP`): its warping error, the input's (the floor) and their ratio, between consecutive
    frames and, when measured, ``LONG_GAP`` frames apart; and the flow used."""
    summary: dict[str, object] = {"flow": meter.flow.name}
    for gap, suffix in ((1, ""), (LONG_GAP, "_long")):
        errors = mean_errors(meter.pairs.get(gap, ()))
        if not errors:
            continue
        floor, clip = errors[0], errors[1]
        summary[f"warp_error{suffix}"] = clip
        summary[f"input_warp_error{suffix}"] = floor
        summary[f"warp_error{suffix}_x_input"] = clip / floor if floor else None
    return summary
