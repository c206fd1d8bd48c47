"""Synthetic clips with known motion for the optical flow and temporal hold tests: a textured pan and a
disc moving over a still background, built with exact geometry (nothing of the library makes them)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

DISC_COLOUR = (0.85, 0.45, 0.25)
"""The disc's mean colour: its texture varies around it (enough for optical flow to follow)."""


def texture(height: int, width: int, seed: int = 0, discs: int = 12) -> Tensor:
    """``[3,H,W]`` 0..1: smooth random colour fields at several scales plus hard-edged discs."""
    gen = torch.Generator().manual_seed(seed)
    field = torch.zeros(1, 3, height, width)
    for cell, weight in ((24, 0.45), (8, 0.35), (3, 0.2)):
        coarse = torch.rand(1, 3, height // cell + 2, width // cell + 2, generator=gen)
        field += weight * F.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=False)
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    for _ in range(discs):
        cy, cx = (torch.rand(2, generator=gen) * torch.tensor([height, width])).tolist()
        radius = 3 + 7 * torch.rand(1, generator=gen).item()
        inside = (ys - cy) ** 2 + (xs - cx) ** 2 <= radius**2
        field[0] = torch.where(inside, torch.rand(3, 1, 1, generator=gen), field[0])
    return field[0].clamp(0, 1)


def pan_clip(count: int, height: int, width: int, flow: tuple[float, float], seed: int = 0) -> Tensor:
    """``[count,3,H,W]`` frames of one still picture seen by a camera that moves so that the flow from
    each frame to the next is ``flow`` (x, y) everywhere. Half-pixel steps are exact: the picture is
    drawn at twice the size and each frame is a 2x2 box average of a crop of it."""
    step_x, step_y = round(2 * flow[0]), round(2 * flow[1])
    if (step_x / 2, step_y / 2) != tuple(flow):
        raise ValueError(f"flow must be in half pixels, got {flow}")
    margin_x, margin_y = abs(step_x) * (count - 1), abs(step_y) * (count - 1)
    big = texture(2 * height + margin_y, 2 * width + margin_x, seed, discs=40)
    # Frame k is the crop at offset o_k; a(p) = b(p + o_a - o_b), so o_(k+1) = o_k - flow.
    x0 = margin_x if step_x > 0 else 0
    y0 = margin_y if step_y > 0 else 0
    crops = [
        big[:, y0 - k * step_y : y0 - k * step_y + 2 * height, x0 - k * step_x : x0 - k * step_x + 2 * width]
        for k in range(count)
    ]
    return F.avg_pool2d(torch.stack(crops), 2)


def disc_masks(
    count: int, height: int, width: int, start: tuple[int, int], step: tuple[int, int], radius: float
) -> Tensor:
    """``[count,1,H,W]`` True inside the disc of each frame, centred at ``start`` (x, y) + k ``step``."""
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    masks = [
        (xs - (start[0] + k * step[0])) ** 2 + (ys - (start[1] + k * step[1])) ** 2 <= radius**2
        for k in range(count)
    ]
    return torch.stack(masks).unsqueeze(1)


def disc_clip(
    count: int,
    height: int,
    width: int,
    start: tuple[int, int],
    step: tuple[int, int],
    radius: float,
    seed: int = 0,
) -> tuple[Tensor, Tensor]:
    """A textured orange disc moving by ``step`` (integer x, y) a frame over a still textured background:
    the frames ``[count,3,H,W]`` and the disc's masks ``[count,1,H,W]``. Its texture moves with it."""
    background = texture(height, width, seed)
    margin = max(abs(step[0]), abs(step[1])) * count
    pattern = texture(height + 2 * margin, width + 2 * margin, seed + 1000)
    colour = torch.tensor(DISC_COLOUR).view(3, 1, 1)
    masks = disc_masks(count, height, width, start, step, radius)
    frames = []
    for k in range(count):
        x, y = margin - k * step[0], margin - k * step[1]
        disc = (colour + 0.8 * (pattern[:, y : y + height, x : x + width] - 0.5)).clamp(0, 1)
        frames.append(torch.where(masks[k], disc, background))
    return torch.stack(frames), masks


def swimming(frames: Tensor, amplitude: float = 0.15, cell: int = 3, seed: int = 0) -> Tensor:
    """``frames`` with a texture redrawn for every frame (what a per-frame stylisation does): a smooth
    random pattern of about ``cell`` pixels, ``amplitude`` from darkest to brightest, clamped to 0..1."""
    count, _, height, width = frames.shape
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand(count, 3, height // cell + 1, width // cell + 1, generator=gen)
    pattern = F.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)
    return (frames + amplitude * (pattern - 0.5)).clamp(0, 1)
