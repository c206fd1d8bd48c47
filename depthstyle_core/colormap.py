"""A perceptual colour map for depth previews, from a small built-in table (no matplotlib).

Dark purple for far, through red and orange, to pale yellow for near: lightness rises
monotonically along the table, so the map reads correctly in greyscale too.
"""

from __future__ import annotations

import torch

_ANCHORS_RGB8 = (
    (0, 0, 4),
    (40, 11, 84),
    (101, 21, 110),
    (159, 42, 99),
    (212, 72, 66),
    (245, 125, 21),
    (250, 193, 39),
    (245, 235, 110),
    (252, 255, 164),
)


def colormap_table(device: torch.device | str = "cpu") -> torch.Tensor:
    """The anchor colours as a ``[N,3]`` float tensor in 0..1."""
    return torch.tensor(_ANCHORS_RGB8, dtype=torch.float32, device=device) / 255.0


def apply_colormap(values: torch.Tensor) -> torch.Tensor:
    """Map ``[B,1,H,W]`` values in 0..1 to ``[B,3,H,W]`` colours by linear interpolation."""
    table = colormap_table(values.device)
    steps = table.shape[0] - 1
    position = values.float().clamp(0, 1) * steps
    low = position.floor().clamp(max=steps - 1).long()
    frac = position - low
    low_rgb = table[low.squeeze(1)].permute(0, 3, 1, 2)
    high_rgb = table[(low + 1).squeeze(1)].permute(0, 3, 1, 2)
    return low_rgb + (high_rgb - low_rgb) * frac
