"""Image files in and out of a dataset stylisation, on worker threads (Pillow releases the GIL).

Photos come in as ``[3,H,W]`` uint8 (a quarter of the bytes of float to copy to the device): decoded,
for JPEG, at the smallest DCT scale that still covers the wanted size (draft mode), resized so that the
shorter side is ``content_size`` (bicubic) and, with ``crop``, only the centre square resampled.
Outputs go out under a temporary name in their own folder and are renamed into place, so an output file
is either absent or complete, whenever the process is killed.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ...depthstyle_core.errors import InputImageError
from ..data import DECODE_ERRORS, shorter_side_size
from .config import FORMATS

PNG_COMPRESS_LEVEL = 1  # zlib's fastest: about 3x faster to write than Pillow's default 6


Box = tuple[int, int, int, int]


def _window(height: int, width: int, size: int, crop: bool) -> tuple[tuple[int, int], Box]:
    """The resized size and the box (left, top, right, bottom) of it to keep."""
    if size == 0:
        return (height, width), (0, 0, width, height)
    resized_h, resized_w = shorter_side_size(height, width, size)
    if not crop:
        return (resized_h, resized_w), (0, 0, resized_w, resized_h)
    top, left = (resized_h - size) // 2, (resized_w - size) // 2
    return (resized_h, resized_w), (left, top, left + size, top + size)


def load_photo(path: str | os.PathLike, content_size: int = 0, crop: bool = False) -> torch.Tensor:
    """The photo as ``[3,H,W]`` uint8 RGB; see the module docstring. Raises :class:`InputImageError`
    when it cannot be decoded."""
    try:
        with Image.open(path) as image:
            (height, width), box = _window(image.height, image.width, content_size, crop)
            if content_size:
                image.draft("RGB", (width, height))
            image.load()
            rgb = image if image.mode == "RGB" else image.convert("RGB")
            out_w, out_h = box[2] - box[0], box[3] - box[1]
            if (out_w, out_h) != rgb.size or box[:2] != (0, 0):
                scale_x, scale_y = rgb.width / width, rgb.height / height
                source = (box[0] * scale_x, box[1] * scale_y, box[2] * scale_x, box[3] * scale_y)
                rgb = rgb.resize((out_w, out_h), Image.Resampling.BICUBIC, box=source, reducing_gap=3.0)
            array = np.asarray(rgb, dtype=np.uint8)
    except DECODE_ERRORS as exc:
        raise InputImageError(f"cannot decode {path}: {exc}") from exc
    return torch.from_numpy(array.copy()).permute(2, 0, 1)


def load_painting(path: str | os.PathLike, long_side: int) -> torch.Tensor:
    """The painting as ``[1,3,H,W]`` float32 0..1, decoded at the smallest JPEG scale that keeps its
    longer side at least ``long_side`` (0: full size); the exact resizing is left to ``style_signals``."""
    try:
        with Image.open(path) as image:
            if long_side:
                scale = long_side / max(image.width, image.height)
                image.draft("RGB", (round(image.width * scale), round(image.height * scale)))
            image.load()
            rgb = image if image.mode == "RGB" else image.convert("RGB")
            array = np.asarray(rgb, dtype=np.uint8)
    except DECODE_ERRORS as exc:
        raise InputImageError(f"cannot decode {path}: {exc}") from exc
    return torch.from_numpy(array.copy()).permute(2, 0, 1).unsqueeze(0).float().div_(255.0)


def failure_reason(error: InputImageError, path: Path, relative: str) -> str:
    """The decoder's message for ``skipped.csv``, naming the file by its ``relative`` path (the record
    stays true when the folders move)."""
    return str(error.__cause__ or error).replace(str(path), relative)


def temporary_name(path: Path) -> Path:
    """Where ``path`` is written before it is renamed into place: hidden, beside it, always the same
    name, so a rerun that redoes the image replaces what a killed run left there."""
    return path.with_name(f".{path.name}.partial")


def write_image(pixels: np.ndarray, path: Path, fmt: str, quality: int) -> None:
    """Write ``[H,W,3]`` uint8 pixels to ``path`` in ``fmt`` (jpg, png, webp) through a temporary file."""
    options = {"compress_level": PNG_COMPRESS_LEVEL} if fmt == "png" else {"quality": quality}
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_name(path)
    Image.fromarray(pixels).save(temporary, format=FORMATS[fmt], **options)
    os.replace(temporary, path)
