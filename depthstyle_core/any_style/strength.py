"""How strongly the any-painting network paints: one number, a mask, depth, and what they do.

Strength 1 is the network's own result with the painting; 0 the photo, bit for bit. In between, two
things move together (measured on the example pair, ``bench/results/any_style_strength.md``):

- the **signals** (AdaIN targets and modulation) move from the photo's own to the painting's by
  ``strength``. The network then paints the photo's own colours with its own brushwork at 0 and the
  painting at 1, and keeps brush texture in between (a pixel blend alone would show a faint double
  image of two pictures);
- the **pixels** blend from the photo to that result by ``sqrt(strength)``. The network with the
  photo's own signals is not the photo (13.5/255 from it on the example), so some pixel blend is needed
  to end at the photo. ``sqrt`` makes the distance to the photo grow about evenly with strength (6, 10,
  16, 23, 30, 37, 45, 52 /255 at strength 1/8 ... 1), where the same ``strength`` for both would grow
  slowly at first (2, 5, 10, 16, ...).

The authors' own ``alpha`` (a feature-space blend) is not used: with the published weights it makes
saturated one-colour pictures at 0.25-0.75 (``reference/arbitrary_style.md``).

Per-pixel strength, ``strength x mask x depth factor``, acts the same way pixel by pixel. The depth
factor (after Kitov et al. 2019, who scale AdaIN's strength by a proximity map from depth) is
``1 - depth_preserve x proximity(depth)``, with depth normalised per image (near = 1) and
``proximity`` a smoothstep from 0 at depth :data:`FAR_EDGE` to 1 at :data:`NEAR_EDGE`: the farthest
fifth of the depth range takes the full style, the nearest fifth keeps ``depth_preserve`` of the
photo, and the S-curve puts the change in the middle of the range, where a subject usually parts from
its background. Its flat ends ignore the noise of depth maps in the sky and on the subject, and it has
no kinks that would show as contour lines.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..errors import SettingsError
from ..masks import fit_mask

FAR_EDGE = 0.2  # normalised depth at and below which nothing is preserved
NEAR_EDGE = 0.8  # normalised depth at and above which depth_preserve applies in full


def check_fraction(name: str, value: float) -> None:
    """Raise :class:`SettingsError` (a ValueError) unless ``value`` is a number from 0 to 1."""
    if not (isinstance(value, int | float) and 0.0 <= value <= 1.0):
        raise SettingsError(f"{name} must be a number from 0 to 1, got {value!r}")


def signal_amount(strength: float | Tensor) -> float | Tensor:
    """How far the signals move from the photo's own to the painting's."""
    return strength


def pixel_amount(strength: float | Tensor) -> float | Tensor:
    """How far the pixels move from the photo to the network's result."""
    return strength.sqrt() if isinstance(strength, Tensor) else math.sqrt(strength)


def proximity(depth: Tensor) -> Tensor:
    """0 for far, 1 for near: a smoothstep of normalised depth between FAR_EDGE and NEAR_EDGE."""
    x = ((depth.float().clamp(0, 1) - FAR_EDGE) / (NEAR_EDGE - FAR_EDGE)).clamp(0, 1)
    return x * x * (3 - 2 * x)


def strength_map(
    strength: float,
    batch: int,
    height: int,
    width: int,
    *,
    mask: Tensor | None = None,
    depth: Tensor | None = None,
    depth_preserve: float = 0.0,
) -> Tensor | None:
    """The per-pixel strength ``[B,1,H,W]`` in 0..1, or None when it is ``strength`` everywhere.

    ``mask`` and ``depth`` are anything :func:`..masks.fit_mask` accepts (one for all images or one per
    image, any size; depth normalised 0..1, near = 1).
    """
    uses_depth = depth is not None and depth_preserve > 0
    if mask is None and not uses_depth:
        return None
    amount = torch.full((batch, 1, height, width), float(strength))
    if mask is not None:
        amount = amount * fit_mask(mask.cpu(), batch, height, width)
    if uses_depth:
        near = proximity(fit_mask(depth.cpu(), batch, height, width))
        amount = amount * (1 - depth_preserve * near)
    return amount
