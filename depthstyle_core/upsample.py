"""A result painted on a smaller copy of a photo, brought back to the photo's size with its outlines.

A plain bicubic enlargement softens every edge by the scale factor. The guided enlargement (the fast
guided filter of He and Sun, 2015) fits, in each small window of the small result, the result as a
linear function of the small photo's brightness, ``result ~ a * photo + b``; the smoothed ``a`` and ``b``
are enlarged (they vary slowly) and applied to the full-size photo. Where the painting follows the
photo's brightness, its outlines come back at full sharpness; inside flat windows ``a`` is about 0 and
the strokes are enlarged as they are.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from .stylize import luminance

RADIUS = 1
"""Window radius, in pixels of the small picture."""
EPS = 1e-3
"""Regularisation: the smaller, the more closely the result follows the photo's edges."""


def _box(x: Tensor, radius: int) -> Tensor:
    """The mean over a (2 radius + 1)² window, over the pixels inside the picture at its borders."""
    return F.avg_pool2d(x, 2 * radius + 1, stride=1, padding=radius, count_include_pad=False)


def guided_enlarge(
    small: Tensor, small_photo: Tensor, photo: Tensor, *, radius: int = RADIUS, eps: float = EPS
) -> Tensor:
    """``small`` ``[B,3,h,w]`` (painted on ``small_photo``, the photo resized to ``h x w``) at the size
    of ``photo`` ``[B,3,H,W]`` (H >= h, W >= w), guided by the photo's brightness; clamped to 0..1."""
    size = tuple(photo.shape[-2:])
    guide_small, guide = luminance(small_photo), luminance(photo)
    mean_guide = _box(guide_small, radius)
    mean_small = _box(small, radius)
    covariance = _box(guide_small * small, radius) - mean_guide * mean_small
    variance = _box(guide_small * guide_small, radius) - mean_guide * mean_guide
    slope = covariance / (variance + eps)
    offset = mean_small - slope * mean_guide
    slope, offset = _box(slope, radius), _box(offset, radius)
    enlarge = lambda x: F.interpolate(x, size=size, mode="bilinear", align_corners=False)  # noqa: E731
    return (enlarge(slope) * guide + enlarge(offset)).clamp_(0, 1)
