"""Which sizes a per-image optimisation works at: the result's size, the working size, the scales.

VGG-16 halves the image four times before relu5_1, and a Gram matrix of a feature map a few pixels wide
says little about a style, so no scale is smaller than :data:`MIN_WORK_SIDE` on its shorter side. A
result smaller than that (a thumbnail, even 1x1) is optimised at an upsampled working size and brought
back down at the end.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...depthstyle_core.errors import InputImageError
from ...depthstyle_core.stylize import long_side_size, scaled_size

MIN_WORK_SIDE = 64
MAX_WORK_SIDE = 8192
SMALLEST_SCALE_RATIO = 2**0.25  # an intermediate scale this close to the next one is left out


@dataclass(frozen=True)
class SizePlan:
    """The result's size, the largest working size and every scale from coarse to fine, as (h, w)."""

    output: tuple[int, int]
    working: tuple[int, int]
    scales: tuple[tuple[int, int], ...]


def output_size(height: int, width: int, size: int) -> tuple[int, int]:
    """(h, w) of the result: long side ``size`` with the input's aspect, or the input's own (size 0)."""
    return long_side_size(height, width, size)


def plan_sizes(height: int, width: int, size: int, min_size: int, scale_step: float) -> SizePlan:
    """The sizes to optimise an ``height`` x ``width`` input at, for a result with long side ``size``.

    Scales have long sides ``min_size * scale_step**k`` below the working long side, then the working
    size itself; a scale whose shorter side would fall below :data:`MIN_WORK_SIDE` is skipped.
    """
    if height < 1 or width < 1:
        raise InputImageError(f"the image is empty ({height}x{width} pixels)")
    out_h, out_w = output_size(height, width, size)
    upscale = max(1.0, MIN_WORK_SIDE / min(out_h, out_w))
    work_h, work_w = scaled_size(out_h, out_w, upscale) if upscale > 1 else (out_h, out_w)
    if max(work_h, work_w) > MAX_WORK_SIDE:
        raise InputImageError(
            f"a {out_w}x{out_h} result is too narrow to optimise: its shorter side must be brought to "
            f"{MIN_WORK_SIDE} px for VGG-16, which would make the longer side {max(work_h, work_w)} px "
            f"(at most {MAX_WORK_SIDE}). Crop the image to a less elongated shape."
        )
    work_long = max(work_h, work_w)
    scales: list[tuple[int, int]] = []
    long_side = float(min_size)
    while long_side * SMALLEST_SCALE_RATIO <= work_long:
        scale = scaled_size(work_h, work_w, long_side / work_long)
        if min(scale) >= MIN_WORK_SIDE and scale not in scales:
            scales.append(scale)
        long_side *= scale_step
    scales.append((work_h, work_w))
    return SizePlan((out_h, out_w), (work_h, work_w), tuple(scales))
