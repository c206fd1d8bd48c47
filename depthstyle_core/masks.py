"""Per-pixel style strength: masks from depth, masks fitted to a batch, and the blend with the content.

A mask is a float map in 0..1 where 1 means the full style and 0 keeps the content unchanged. Every
stylisation path blends through :func:`apply_strength`, so "mask 0 gives the input back bit for bit"
holds everywhere.

:func:`depth_to_mask` turns a normalised depth map (near = 1, far = 0) into a mask that selects a depth
band. Worked example, ``near=1, far=0.5, softness=0.2``: depth 0.5 to 1 gives 1, depth 0.4 gives 0.5,
depth 0.3 and below gives 0; ``invert=True`` swaps 1 and 0 (style the background, keep the subject).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from .errors import MaskError, SettingsError

DEFAULT_NEAR = 1.0
DEFAULT_FAR = 0.5
DEFAULT_SOFTNESS = 0.1


def check_depth_band(near: float, far: float, softness: float) -> None:
    """Raise :class:`MaskError` unless ``0 <= far <= near <= 1`` and ``0 <= softness <= 1``."""
    for name, value in (("near", near), ("far", far), ("softness", softness)):
        if not 0.0 <= value <= 1.0:
            raise MaskError(f"{name} must be between 0 and 1 (normalised depth), got {value}")
    if far > near:
        raise MaskError(
            f"far ({far}) is greater than near ({near}): near is the nearer end of the depth band "
            "(1 = the nearest point), far the farther end (0 = the farthest point); swap them"
        )


def depth_to_mask(
    depth: torch.Tensor,
    *,
    near: float = DEFAULT_NEAR,
    far: float = DEFAULT_FAR,
    softness: float = DEFAULT_SOFTNESS,
    feather: int = 0,
    invert: bool = False,
) -> torch.Tensor:
    """A mask ``[B,1,H,W]`` (float32, 0..1) that is 1 where the depth lies in the band ``far..near``.

    ``depth``: ``[B,C,H,W]`` normalised depth, near = 1 (a greyscale depth image; channels are averaged).
    Outside the band the mask falls linearly to 0 over ``softness`` (in depth units; 0 = a hard edge).
    ``feather`` blurs the mask with a Gaussian of sigma ``feather / 2`` pixels (kernel radius ``feather``,
    edges replicated); ``invert`` returns ``1 - mask``.
    """
    check_depth_band(near, far, softness)
    if feather < 0:
        raise MaskError(f"feather must be 0 or more pixels, got {feather}")
    if depth.ndim != 4:
        raise MaskError(f"expected depth as [B,C,H,W], got shape {tuple(depth.shape)}")
    value = depth.float().mean(dim=1, keepdim=True)
    outside = torch.maximum(far - value, value - near).clamp_min(0)
    mask = (outside == 0).float() if softness == 0 else (1 - outside / softness).clamp_min(0)
    if invert:
        mask = 1 - mask
    return gaussian_blur(mask, feather)


def gaussian_blur(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """Blur ``[B,1,H,W]`` with a normalised Gaussian (sigma ``radius / 2``, cut at ``radius``), edges
    replicated so that a uniform mask stays uniform."""
    if radius == 0:
        return mask
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float32, device=mask.device)
    kernel = torch.exp(-0.5 * (offsets / (radius / 2)) ** 2)
    kernel = kernel / kernel.sum()
    padded = F.pad(mask, (radius, radius, 0, 0), mode="replicate")
    mask = F.conv2d(padded, kernel.view(1, 1, 1, -1))
    padded = F.pad(mask, (0, 0, radius, radius), mode="replicate")
    return F.conv2d(padded, kernel.view(1, 1, -1, 1))


def fit_mask(mask: torch.Tensor, batch: int, height: int, width: int) -> torch.Tensor:
    """``mask`` as ``[batch,1,height,width]`` float32 in 0..1.

    Accepts ``[H,W]``, ``[N,H,W]`` (ComfyUI's MASK) or ``[N,1,H,W]``; N = 1 applies to every image, N =
    ``batch`` gives one mask per image, any other N is a :class:`MaskError`. A mask of another size is
    resized (bilinear, antialiased when shrinking); values are clamped to 0..1.
    """
    if mask.ndim == 2:
        mask = mask[None, None]
    elif mask.ndim == 3:
        mask = mask[:, None]
    elif mask.ndim != 4 or mask.shape[1] != 1:
        raise MaskError(
            f"a mask must be [H,W], [N,H,W] or [N,1,H,W] with values 0..1, got shape {tuple(mask.shape)}"
        )
    count = mask.shape[0]
    if count not in (1, batch):
        raise MaskError(
            f"got {count} masks for {batch} images: give one mask for all images or one mask per image"
        )
    mask = mask.float()
    if tuple(mask.shape[-2:]) != (height, width):
        shrinking = mask.shape[-2] >= height and mask.shape[-1] >= width
        mask = F.interpolate(
            mask, size=(height, width), mode="bilinear", align_corners=False, antialias=shrinking
        )
    return mask.clamp(0, 1).expand(batch, 1, height, width)


def apply_strength(
    content: torch.Tensor,
    styled: torch.Tensor,
    strength: float = 1.0,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Blend ``[B,3,H,W]`` ``styled`` into ``content`` with per-pixel weight ``strength x mask``.

    The blend is clamped to 0..1; where the weight is 0 the result is ``content`` exactly, bit for bit.
    ``mask`` is anything :func:`fit_mask` accepts (None: ``strength`` everywhere).
    """
    if not 0.0 <= strength <= 1.0:
        raise SettingsError(f"strength must be between 0 and 1, got {strength}")
    if mask is None:
        if strength == 0:
            return content.clone()
        return (styled if strength == 1 else torch.lerp(content, styled, strength)).clamp(0, 1)
    batch, _, height, width = content.shape
    weight = fit_mask(mask.to(content.device), batch, height, width) * strength
    blended = torch.lerp(content, styled, weight).clamp_(0, 1)
    return torch.where(weight == 0, content, blended)


def load_mask(path: str | os.PathLike) -> torch.Tensor:
    """Read a greyscale mask image as ``[1,1,H,W]`` float32 0..1 (white = full style).

    8- and 16-bit greyscale keep their precision; colour images are converted to grey (alpha ignored).
    """
    path = Path(path)
    if not path.is_file():
        raise MaskError(f"mask file not found: {path}")
    try:
        with Image.open(path) as image:
            image.load()
            array = _grey_array(image)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise MaskError(f"cannot read the mask {path} as an image ({exc}); use a greyscale PNG") from exc
    return torch.from_numpy(array).clamp(0, 1)[None, None]


def _grey_array(image: Image.Image) -> np.ndarray:
    """A PIL image as float32 ``[H,W]`` in 0..1 with the full precision of its mode."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16-bit greyscale PNGs open as I;16 or I
        return (np.asarray(image, dtype=np.float64) / 65535.0).astype(np.float32)
    if image.mode == "F":
        return np.asarray(image, dtype=np.float32)
    if image.mode not in ("L", "1"):
        image = image.convert("RGB").convert("L")
    return np.asarray(image.convert("L"), dtype=np.float32) / 255.0
