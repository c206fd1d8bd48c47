"""Moving pictures and maps along a flow, and the masks that say where a flow can be trusted.

Coordinates are in pixels of the frame sampled from (``[B,H,W,2]``, x then y); a flow adds to the identity
grid. Sampling treats pixel centres as integers (``align_corners=True``) and clamps at the border.
The two trust tests are the ones of Lai et al. (ECCV 2018) and Ruder et al. (GCPR 2016).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def identity_grid(batch: int, height: int, width: int, device: torch.device | str = "cpu") -> Tensor:
    """Every pixel's own coordinates ``[B,H,W,2]`` (x, y) in float32."""
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=torch.float32, device=device),
        torch.arange(width, dtype=torch.float32, device=device),
        indexing="ij",
    )
    return torch.stack((xs, ys), dim=-1).unsqueeze(0).expand(batch, -1, -1, -1)


def flow_to_grid(flow: Tensor) -> Tensor:
    """Where each pixel lands: identity + ``flow`` (``[B,2,H,W]`` -> ``[B,H,W,2]``)."""
    batch, _, height, width = flow.shape
    return identity_grid(batch, height, width, flow.device) + flow.permute(0, 2, 3, 1)


def sample(image: Tensor, coords: Tensor, mode: str = "bilinear") -> Tensor:
    """``image`` ``[B,C,h,w]`` read at pixel coordinates ``coords`` ``[B,H,W,2]`` -> ``[B,C,H,W]``.

    ``mode`` is bilinear (maps, masks, the metric) or bicubic (pictures: keeps more detail; the result
    can overshoot, so clamp it)."""
    height, width = image.shape[-2:]
    scale = torch.tensor(
        [2.0 / max(width - 1, 1), 2.0 / max(height - 1, 1)], dtype=coords.dtype, device=coords.device
    )
    normalised = coords * scale - 1.0
    return F.grid_sample(image, normalised, mode=mode, padding_mode="border", align_corners=True)


def warp(image: Tensor, flow: Tensor, mode: str = "bilinear") -> Tensor:
    """``image`` moved along ``flow``: the result at ``p`` is ``image(p + flow(p))``."""
    return sample(image, flow_to_grid(flow), mode)


def inside(coords: Tensor) -> Tensor:
    """``[B,1,H,W]`` True where ``coords`` fall inside the frame they point into, border pixels included
    whole (its size is taken from the grid itself: the frames are the same size)."""
    height, width = coords.shape[1:3]
    x, y = coords[..., 0], coords[..., 1]
    return ((x >= -0.5) & (x <= width - 0.5) & (y >= -0.5) & (y <= height - 0.5)).unsqueeze(1)


def squared_length(flow: Tensor) -> Tensor:
    return flow.square().sum(dim=1, keepdim=True)


def consistent(flow: Tensor, back: Tensor) -> Tensor:
    """``[B,1,H,W]`` True where going along ``flow`` and then along ``back`` (the flow the other way)
    returns to the start: ``|F + B(p+F)|² <= 0.01 (|F|² + |B(p+F)|²) + 0.5``."""
    returned = warp(back, flow)
    mismatch = squared_length(flow + returned)
    return mismatch <= 0.01 * (squared_length(flow) + squared_length(returned)) + 0.5


def motion_boundary(flow: Tensor) -> Tensor:
    """``[B,1,H,W]`` True where the flow changes sharply: ``|∇F|² > 0.01 |F|² + 0.002`` with forward
    differences (zero on the last row and column)."""
    du = torch.zeros_like(flow)
    dv = torch.zeros_like(flow)
    du[..., :, :-1] = flow[..., :, :-1] - flow[..., :, 1:]
    dv[..., :-1, :] = flow[..., :-1, :] - flow[..., 1:, :]
    gradient = (du.square() + dv.square()).sum(dim=1, keepdim=True)
    return gradient > 0.01 * squared_length(flow) + 0.002


def trusted(flow: Tensor, back: Tensor) -> Tensor:
    """``[B,1,H,W]`` True where ``flow`` is consistent with ``back`` and not on a motion boundary: the
    pixels Lai et al.'s warping error keeps."""
    return consistent(flow, back) & ~motion_boundary(flow)
