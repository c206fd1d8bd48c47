"""SSIM (Wang et al. 2004) of greyscale images, the variant scikit-image computes with
``structural_similarity(..., gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1)``.

Local means, variances and covariance come from an 11-tap Gaussian window (sigma 1.5, truncated at
3.5 sigma), applied separably with half-sample symmetric padding (``d c b a | a b c d``); the map is
averaged over the pixels at least 5 pixels from the border, where the window lies inside the image.
Computed in float64.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import InputImageError

SIGMA = 1.5
TRUNCATE = 3.5
RADIUS = int(TRUNCATE * SIGMA + 0.5)  # 5: an 11-pixel window
K1, K2 = 0.01, 0.03


def gaussian_window(sigma: float = SIGMA, radius: int = RADIUS) -> Tensor:
    """The normalised 1-D Gaussian weights ``[2*radius+1]`` (float64)."""
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    weights = torch.exp(-0.5 * (x / sigma) ** 2)
    return weights / weights.sum()


def _symmetric_index(length: int, pad: int, device: torch.device) -> Tensor:
    """Indices that pad an axis of ``length`` by ``pad`` on both sides, mirroring with the edge repeated
    (also when ``pad`` exceeds ``length``: the mirror image repeats with period ``2*length``)."""
    index = torch.arange(-pad, length + pad, device=device) % (2 * length)
    return torch.where(index >= length, 2 * length - 1 - index, index)


def gaussian_filter(maps: Tensor, sigma: float = SIGMA, radius: int = RADIUS) -> Tensor:
    """Blur every channel of ``[B,C,H,W]`` with a separable Gaussian, half-sample symmetric borders."""
    height, width = maps.shape[-2:]
    channels = maps.shape[1]
    kernel = gaussian_window(sigma, radius).to(device=maps.device, dtype=maps.dtype)
    padded = maps.index_select(-2, _symmetric_index(height, radius, maps.device))
    padded = padded.index_select(-1, _symmetric_index(width, radius, maps.device))
    rows = F.conv2d(padded, kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)
    return F.conv2d(rows, kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)


def ssim_map(a: Tensor, b: Tensor, data_range: float = 1.0) -> Tensor:
    """The local SSIM ``[B,1,H,W]`` (float64) of two ``[B,1,H,W]`` greyscale batches, borders included."""
    if a.shape != b.shape or a.ndim != 4 or a.shape[1] != 1:
        raise InputImageError(
            f"SSIM needs two greyscale batches [B,1,H,W] of one shape, got {tuple(a.shape)} and "
            f"{tuple(b.shape)}"
        )
    x, y = a.double(), b.double()
    stats = gaussian_filter(torch.cat([x, y, x * x, y * y, x * y], dim=1))
    mean_x, mean_y, xx, yy, xy = stats.unbind(dim=1)
    var_x, var_y, cov = xx - mean_x * mean_x, yy - mean_y * mean_y, xy - mean_x * mean_y
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    numerator = (2 * mean_x * mean_y + c1) * (2 * cov + c2)
    denominator = (mean_x * mean_x + mean_y * mean_y + c1) * (var_x + var_y + c2)
    return (numerator / denominator).unsqueeze(1)


def ssim(a: Tensor, b: Tensor, data_range: float = 1.0) -> Tensor:
    """Mean SSIM per image ``[B]`` (float64) of two ``[B,1,H,W]`` greyscale batches in ``0..data_range``.

    Images need at least 11 pixels on each side (the window); smaller ones raise InputImageError.
    """
    height, width = a.shape[-2:]
    side = 2 * RADIUS + 1
    if min(height, width) < side:
        raise InputImageError(
            f"SSIM needs images of at least {side}x{side} pixels (its window), got {width}x{height}"
        )
    inner = ssim_map(a, b, data_range)[..., RADIUS : height - RADIUS, RADIUS : width - RADIUS]
    return inner.flatten(1).mean(dim=1)
