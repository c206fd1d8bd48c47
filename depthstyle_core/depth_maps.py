"""Depth maps made elsewhere: any depth pack's output, a ControlNet preprocessor's, a file.

A depth map is an image with near = white (the convention of every depth pack), of any size, one for
all images or one per image. :func:`depth_from_map` turns it into the depth the library uses, exactly as
:func:`.depth.estimate_depth` returns it (``[B,1,H,W]``, min-max normalised, near = 1), so a map that
our own depth model made and that comes back in gives the same result as the model itself.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .depth import normalize_depth
from .errors import InputImageError
from .masks import fit_mask


def depth_from_map(
    depth_map: Tensor, batch: int, height: int, width: int, normalization: str = "per_image"
) -> Tensor:
    """``depth_map`` (``[N,C,h,w]`` 0..1, near = white; C = 1, or 3 for a grey picture) as
    ``[batch,1,height,width]`` depth normalised like :func:`.depth.estimate_depth` (``per_image`` or
    ``per_batch``, for video). N = 1 serves every image, N = ``batch`` gives one map per image; a map
    of another size is resized as a mask is. A colour picture is read by its mean over the channels."""
    if depth_map.ndim != 4 or depth_map.shape[0] == 0:
        raise InputImageError(f"a depth map must be an image [N,C,H,W], got shape {tuple(depth_map.shape)}")
    count = depth_map.shape[0]
    if count not in (1, batch):
        raise InputImageError(
            f"got {count} depth maps for {batch} images: give one depth map for all images or one per image"
        )
    maps = depth_map.float()
    grey = maps[:, :1] if bool((maps == maps[:, :1]).all()) else maps.mean(dim=1, keepdim=True)
    if not bool(torch.isfinite(grey).all()):
        raise InputImageError("the depth map has NaN or infinite values: give a depth image with values 0..1")
    fitted = fit_mask(grey, batch, height, width).contiguous()
    return normalize_depth(fitted, normalization)
