"""The preview of the any-painting trainer: one fixed photo painted with a few fixed paintings, as a
grid (top row: the photo and the paintings; bottom row: each painting's result under it)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ...depthstyle_core.models.microast import MicroAST

PREVIEW_PAINTINGS = 3


def _cover(image: Tensor, height: int, width: int) -> Tensor:
    """``image`` resized to cover ``height`` x ``width`` and centre-cropped to it."""
    scale = max(height / image.shape[-2], width / image.shape[-1])
    size = (max(height, round(image.shape[-2] * scale)), max(width, round(image.shape[-1] * scale)))
    resized = F.interpolate(image, size=size, mode="bilinear", align_corners=False, antialias=True)
    top, left = (size[0] - height) // 2, (size[1] - width) // 2
    return resized[..., top : top + height, left : left + width]


def preview_grid(photo: Tensor, paintings: list[Tensor], results: list[Tensor]) -> Tensor:
    """``[1,3,2H,(1+K)W]`` 0..1: the photo ``[1,3,H,W]`` and the K paintings (any sizes, shown cropped
    to the photo's shape) on top, a white cell and the K results ``[1,3,H,W]`` below."""
    height, width = photo.shape[-2:]
    top = [photo] + [_cover(p, height, width) for p in paintings]
    bottom = [torch.ones_like(photo)] + results
    rows = [torch.cat(row, dim=-1) for row in (top, bottom)]
    return torch.cat(rows, dim=-2).clamp(0, 1)


def paint_preview(net: MicroAST, photo: Tensor, paintings: list[Tensor]) -> Tensor:
    """The preview grid of ``net`` (called without gradients; inputs on the network's device)."""
    results = [net(photo, painting) for painting in paintings]
    return preview_grid(photo, paintings, [r.float() for r in results])
