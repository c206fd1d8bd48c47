"""Image tensors in and out: channel fixes, ComfyUI layout conversion, files on disk.

The library works on ``[B,3,H,W]`` float tensors in 0..1. ComfyUI hands over ``[B,H,W,C]``; files
can be greyscale, greyscale+alpha, RGB or RGBA. Everything is converted here, once, so the models
never see anything but three channels.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .errors import InputImageError, SettingsError


def to_rgb(images: torch.Tensor) -> torch.Tensor:
    """Return ``[B,3,H,W]`` from 1 (grey), 2 (grey+alpha), 3 (RGB) or 4 (RGBA) channels.

    Alpha is dropped, not composited: a stylised or depth image keeps the colour under a
    transparent pixel, which is what users expect when they re-apply the mask later.
    """
    if images.ndim != 4:
        raise InputImageError(
            f"expected an image batch [B,C,H,W], got a tensor of shape {tuple(images.shape)}"
        )
    channels = images.shape[1]
    if channels in (1, 2):
        return images[:, :1].expand(-1, 3, -1, -1).contiguous()
    if channels in (3, 4):
        return images[:, :3]
    raise InputImageError(
        f"expected 1 to 4 colour channels, got {channels} (tensor shape {tuple(images.shape)})"
    )


def comfy_to_bchw(images: torch.Tensor) -> torch.Tensor:
    """ComfyUI IMAGE ``[B,H,W,C]`` (or a single ``[H,W,C]``) -> float32 ``[B,3,H,W]``."""
    if images.ndim == 3:
        images = images.unsqueeze(0)
    if images.ndim != 4:
        raise InputImageError(f"expected a ComfyUI IMAGE [B,H,W,C], got shape {tuple(images.shape)}")
    return to_rgb(images.movedim(-1, 1).float())


def bchw_to_comfy(images: torch.Tensor, device: torch.device | str = "cpu") -> torch.Tensor:
    """``[B,C,H,W]`` -> ComfyUI IMAGE ``[B,H,W,3]``, float32 in 0..1 on ``device``."""
    rgb = to_rgb(images).clamp(0, 1)
    return rgb.movedim(1, -1).contiguous().to(device=device, dtype=torch.float32)


WIDE_GREY_MODES = {"I;16": 65535.0, "I;16B": 65535.0, "I;16L": 65535.0, "I": 65535.0, "F": 1.0}
"""Greyscale modes wider than 8 bits (16-bit PNG depth maps and scans), with the value that means white:
converting them to RGB would clip every value above 255."""


def pil_to_tensor(image: Image.Image) -> torch.Tensor:
    """A PIL image of any mode -> ``[1,3,H,W]`` float32 in 0..1 (16-bit greyscale keeps its precision)."""
    if image.mode in WIDE_GREY_MODES:
        array = np.clip(np.asarray(image, dtype=np.float32) / WIDE_GREY_MODES[image.mode], 0.0, 1.0)
        return to_rgb(torch.from_numpy(array.copy())[None, None])
    if image.mode not in ("L", "LA", "RGB", "RGBA"):
        image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
    array = np.asarray(image, dtype=np.float32) / 255.0
    if array.ndim == 2:
        array = array[:, :, None]
    return to_rgb(torch.from_numpy(array.copy()).permute(2, 0, 1).unsqueeze(0))


def tensor_to_pil(image: torch.Tensor) -> Image.Image:
    """``[3,H,W]`` or ``[1,3,H,W]`` in 0..1 -> an RGB PIL image."""
    if image.ndim == 4:
        if image.shape[0] != 1:
            raise InputImageError(f"expected one image, got a batch of {image.shape[0]}")
        image = image[0]
    rgb = to_rgb(image.unsqueeze(0))[0]
    array = (rgb.detach().float().clamp(0, 1).cpu().permute(1, 2, 0).numpy() * 255.0).round()
    return Image.fromarray(array.astype(np.uint8), mode="RGB")


def load_image(path: str | os.PathLike) -> torch.Tensor:
    """Read an image file as ``[1,3,H,W]`` float32 in 0..1 (greyscale and RGBA converted)."""
    path = Path(path)
    if not path.is_file():
        raise InputImageError(f"image file not found: {path}")
    try:
        with Image.open(path) as image:
            image.load()
            return pil_to_tensor(image)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise InputImageError(
            f"cannot read {path} as an image ({exc}). Use a PNG, JPEG, WebP or BMP file."
        ) from exc


def save_image(image: torch.Tensor, path: str | os.PathLike) -> Path:
    """Write ``[3,H,W]`` or ``[1,3,H,W]`` in 0..1 to ``path``; the format follows the suffix."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensor_to_pil(image).save(path)
    return path


DEPTH_FORMATS = {"png": ".png", "png16": ".png", "npy": ".npy"}
"""Depth file formats and their suffixes: 8-bit greyscale PNG, 16-bit greyscale PNG, float32 NumPy array."""


def save_depth(depth: torch.Tensor, path: str | os.PathLike, fmt: str = "png") -> Path:
    """Write one depth map (``[1,1,H,W]``, ``[1,H,W]`` or ``[H,W]``, 0..1, near = 1) to ``path``.

    ``png``: 8-bit greyscale (as three equal channels, like a depth IMAGE); ``png16``: 16-bit greyscale,
    0..65535, for 3D, parallax and relighting; ``npy``: float32 ``[H,W]``, the values unchanged.
    """
    if fmt not in DEPTH_FORMATS:
        raise SettingsError(f"depth format must be one of {tuple(DEPTH_FORMATS)}, got {fmt!r}")
    if depth.numel() != depth.shape[-1] * depth.shape[-2]:
        raise InputImageError(f"expected one depth map, got a tensor of shape {tuple(depth.shape)}")
    plane = depth.detach().float().cpu().reshape(depth.shape[-2:])
    if fmt == "png":
        return save_image(plane.clamp(0, 1).expand(3, -1, -1), path)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "npy":
        np.save(path, plane.numpy())
    else:
        levels = (plane.clamp(0, 1).numpy() * 65535.0).round().astype(np.uint16)
        Image.fromarray(levels).save(path)
    return path
