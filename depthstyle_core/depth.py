"""Depth estimation with Depth Anything V2: model choice, loading, batched inference, previews.

Depth Anything predicts relative inverse depth (larger = nearer). Outputs here keep that
convention: after normalisation near is 1 (white), far is 0 (black), the convention of every
ComfyUI depth pack.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from .checkpoint import read_safetensors
from .colormap import apply_colormap
from .errors import InputImageError, OperationCancelled, SettingsError
from .hub.resolve import HubFile, resolve_model_file
from .images import to_rgb
from .models.depth_anything import DepthAnythingV2, build_depth_anything

PATCH = 14
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
NORMALIZATIONS = ("per_image", "per_batch", "raw")
PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
MAX_ASPECT_STRETCH = 4
DEFAULT_RESOLUTION = 518  # the processing size of the shorter side that Depth Anything V2 was trained at

ProgressCallback = Callable[[int, int, "torch.Tensor | None"], None]
StopCallback = Callable[[], bool]


@dataclass(frozen=True)
class DepthModelSpec:
    """A built-in depth model: where its weights live on the Hub and under which licence."""

    key: str
    display_name: str
    hub_file: HubFile
    licence: str

    @property
    def non_commercial(self) -> bool:
        """True for weights whose licence forbids commercial use."""
        return "NC" in self.licence


DEPTH_MODELS: dict[str, DepthModelSpec] = {
    "small": DepthModelSpec(
        "small",
        "Depth-Anything-V2-Small",
        HubFile(
            "depth-anything/Depth-Anything-V2-Small-hf",
            "model.safetensors",
            "5426e4f0f36572d16453bbda7a8389317b1bef99",
            local_name="Depth-Anything-V2-Small-hf.safetensors",
        ),
        "Apache-2.0",
    ),
    "base": DepthModelSpec(
        "base",
        "Depth-Anything-V2-Base",
        HubFile(
            "depth-anything/Depth-Anything-V2-Base-hf",
            "model.safetensors",
            "b1958afc87fb45a9e3746cb387596094de553ed8",
            local_name="Depth-Anything-V2-Base-hf.safetensors",
        ),
        "CC-BY-NC-4.0",
    ),
    "large": DepthModelSpec(
        "large",
        "Depth-Anything-V2-Large",
        HubFile(
            "Kijai/DepthAnythingV2-safetensors",
            "depth_anything_v2_vitl_fp32.safetensors",
            "5aa7ab578df757d94c743998b157a0204ff29215",
        ),
        "CC-BY-NC-4.0",
    ),
}


@dataclass
class DepthEstimator:
    """A loaded depth network, the precision to run it in, and what a user should know about it."""

    model: DepthAnythingV2
    name: str
    licence: str
    precision: str = "fp32"

    @property
    def device(self) -> torch.device:
        """Where the network's weights are now (it may be moved between runs)."""
        first = next(self.model.parameters(), None)
        return first.device if first is not None else torch.device("cpu")


def load_depth_model(
    source: str | os.PathLike = "small",
    *,
    model_dirs: Sequence[str | os.PathLike] = (),
    cache_dir: str | os.PathLike | None = None,
    endpoint: str | None = None,
    token: str | bool | None = None,
    download_dir: str | os.PathLike | None = None,
    device: torch.device | str = "cpu",
    precision: str = "fp32",
) -> DepthEstimator:
    """Load a depth model: a built-in name ("small", "base", "large"), a file path, or a file name
    found in ``model_dirs``. Both the Hugging Face layout and the original layout load.
    A built-in model found nowhere is downloaded into ``download_dir`` (under the local name the
    README lists), else into the Hugging Face cache.
    ``precision`` (fp32, fp16, bf16) is the default for ``estimate_depth`` with this model."""
    _check_precision(precision)
    spec = DEPTH_MODELS.get(str(source).lower())
    target: str | os.PathLike | HubFile = spec.hub_file if spec else source
    path = resolve_model_file(
        target,
        model_dirs=model_dirs,
        cache_dir=cache_dir,
        endpoint=endpoint,
        token=token,
        download_dir=download_dir,
    )
    tensors, _ = read_safetensors(path)
    model = build_depth_anything({k: v.float() for k, v in tensors.items()}, source=str(path)).to(device)
    model.requires_grad_(False)
    name = spec.display_name if spec else Path(path).name
    licence = spec.licence if spec else "see the model's own licence"
    return DepthEstimator(model=model, name=name, licence=licence, precision=precision)


def _check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise SettingsError(f"precision must be one of {tuple(PRECISIONS)}, got {precision!r}")


def processing_size(height: int, width: int, resolution: int) -> tuple[int, int]:
    """The network input size: shorter side ``resolution``, aspect kept, sides multiples of 14.

    Very elongated images are capped at ``MAX_ASPECT_STRETCH`` times the resolution on the long side
    so that a thin strip does not turn into tens of thousands of tokens.
    """
    if resolution < PATCH:
        raise InputImageError(f"resolution must be at least {PATCH} pixels, got {resolution}")
    scale = resolution / min(height, width)
    scale = min(scale, MAX_ASPECT_STRETCH * resolution / max(height, width))

    def snap(side: int) -> int:
        scaled = side * scale
        rounded = round(scaled / PATCH) * PATCH
        if rounded < min(resolution, scaled):
            rounded = math.ceil(scaled / PATCH) * PATCH
        return max(PATCH, rounded)

    return snap(height), snap(width)


ACTIVATION_BYTES_PER_PIXEL = 2048
"""Peak activation memory of a depth pass per processing pixel, with headroom: measured 770 bytes for
Small and 1780 for Large at 518x518 (fp32, no gradients, CPU peak resident memory)."""


def activation_bytes(height: int, width: int, resolution: int, batch: int, chunk_size: int = 4) -> int:
    """An estimate of the memory :func:`estimate_depth` needs beyond the weights for ``batch`` images of
    ``height`` x ``width`` (chunks of ``chunk_size`` run at a time), so a host can make room first."""
    processing_height, processing_width = processing_size(height, width, resolution)
    return min(batch, chunk_size) * processing_height * processing_width * ACTIVATION_BYTES_PER_PIXEL


def _prepare(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize 0..1 RGB images to ``size`` and apply Depth Anything's ImageNet normalisation."""
    resized = images
    if tuple(images.shape[-2:]) != size:
        resized = F.interpolate(images, size=size, mode="bicubic", align_corners=False, antialias=True)
    mean = images.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = images.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (resized - mean) / std


def depth_for_loss(model: DepthAnythingV2, images: torch.Tensor, resolution: int) -> torch.Tensor:
    """Differentiable raw depth ``[B,1,h,w]`` of 0..1 images at the network's processing size."""
    size = processing_size(images.shape[-2], images.shape[-1], resolution)
    return model(_prepare(images, size))


def _run_chunk(
    model: DepthAnythingV2, chunk: torch.Tensor, resolution: int, dtype: torch.dtype
) -> torch.Tensor:
    """Raw depth of one chunk at the input size; reduced precision falls back to fp32 on NaN/inf."""
    if dtype != torch.float32:
        with torch.autocast(device_type=chunk.device.type, dtype=dtype):
            raw = depth_for_loss(model, chunk, resolution)
        raw = raw.float()
        if not bool(torch.isfinite(raw).all()):
            raw = depth_for_loss(model, chunk, resolution)
    else:
        raw = depth_for_loss(model, chunk, resolution)
    if raw.shape[-2:] != chunk.shape[-2:]:
        raw = F.interpolate(raw, size=chunk.shape[-2:], mode="bilinear", align_corners=False)
    return raw.clamp_min(0)


def normalize_depth(depth: torch.Tensor, mode: str = "per_image") -> torch.Tensor:
    """Min-max normalise ``[B,1,H,W]`` depth per image, over the whole batch, or not at all."""
    if mode == "raw":
        return depth
    if mode == "per_image":
        flat = depth.flatten(1)
        low = flat.min(dim=1).values.view(-1, 1, 1, 1)
        high = flat.max(dim=1).values.view(-1, 1, 1, 1)
    elif mode == "per_batch":
        low, high = depth.min(), depth.max()
    else:
        raise SettingsError(f"normalization must be one of {NORMALIZATIONS}, got {mode!r}")
    return (depth - low) / (high - low).clamp_min(1e-8)


def estimate_depth(
    estimator: DepthEstimator,
    images: torch.Tensor,
    *,
    resolution: int = DEFAULT_RESOLUTION,
    normalization: str = "per_image",
    chunk_size: int = 4,
    precision: str | None = None,
    on_progress: ProgressCallback | None = None,
    should_stop: StopCallback | None = None,
) -> torch.Tensor:
    """Depth of ``[B,C,H,W]`` 0..1 images as ``[B,1,H,W]`` float32 at the input size; near = 1.

    Images are processed in chunks of ``chunk_size``; ``per_batch`` normalisation shares one range
    over the whole batch (use it for video to avoid flicker). ``precision`` defaults to the
    estimator's. Runs where the network's weights are. Gradients flow when enabled.
    """
    precision = precision or estimator.precision
    if normalization not in NORMALIZATIONS:
        raise SettingsError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
    _check_precision(precision)
    if chunk_size < 1:
        raise SettingsError(f"chunk_size must be at least 1, got {chunk_size}")
    rgb = to_rgb(images).float()
    total = rgb.shape[0]
    device = estimator.device
    parts = []
    for start in range(0, total, chunk_size):
        if should_stop is not None and should_stop():
            raise OperationCancelled(f"depth estimation stopped after {start} of {total} images")
        chunk = rgb[start : start + chunk_size].to(device)
        parts.append(_run_chunk(estimator.model, chunk, resolution, PRECISIONS[precision]).cpu())
        if on_progress is not None:
            on_progress(min(start + chunk_size, total), total, None)
    return normalize_depth(torch.cat(parts), normalization)


def colorize_depth(depth: torch.Tensor) -> torch.Tensor:
    """A colour preview ``[B,3,H,W]`` of 0..1 depth ``[B,1,H,W]`` (near bright, far dark)."""
    return apply_colormap(depth)


def depth_to_rgb(depth: torch.Tensor) -> torch.Tensor:
    """Greyscale 3-channel ``[B,3,H,W]`` from ``[B,1,H,W]`` depth, for ComfyUI's IMAGE type."""
    return depth.clamp(0, 1).expand(-1, 3, -1, -1).contiguous()
