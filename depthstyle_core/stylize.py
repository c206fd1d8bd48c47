"""Apply a trained style network to images: strength and masks, colour preservation, brush size, video
frames, batching, seam-free tiling and OOM recovery (the last two in :mod:`.tiling`).

Brush size (``scale``): the network paints strokes of a fixed size in pixels, so it runs on the image
resized by ``scale`` and its (clamped) result comes back at the input's size: stylising at scale 0.5
equals stylising the half-size image and enlarging the result. Shrinking uses an antialiased bilinear
(triangle) filter, enlarging PyTorch's bicubic filter (a = -0.75, align_corners=False), clamped to
0..1. Strength, mask and colour preservation then work at the input's size, so where ``strength`` < 1
the content's own detail is blended back.

Video (``frames="shared"``): every frame is normalised with instance-norm statistics pooled over the
whole batch instead of its own, so the same content gets the same look in every frame (no flicker).
The result does not depend on ``chunk_size`` or tiling. A batch larger than ``chunk_size`` costs about
one extra pass (the statistics are gathered first). Batch-norm networks have no per-image statistics:
both modes are the same for them. ``frames="flow"`` does the same and then holds the texture still on
moving things along the optical flow (:mod:`.video.hold`). A clip streamed in parts keeps one look
with statistics measured once on frames spread over it (:func:`clip_look`, then ``look=``).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor

from .devices import same_device
from .errors import SettingsError
from .images import to_rgb
from .masks import apply_strength, fit_mask
from .models.padding import STRIDE
from .models.transformer_net import NormStats, TransformerNet
from .tiling import (
    DEFAULT_OVERLAP,
    MIN_TILE_MARGIN,
    OVERLAP_MULTIPLE,
    Progress,
    ProgressCallback,
    Runner,
    StopCallback,
    TilePlan,
    round_up,
    shared_norm_stats,
    stylize_chunk,
)
from .video.hold import hold_still

PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
FRAMES = ("independent", "shared", "flow")
POOLED_FRAMES = ("shared", "flow")
MAX_SCALE = 4.0
LUMA = (0.299, 0.587, 0.114)  # BT.601

__all__ = [
    "DEFAULT_OVERLAP",
    "FRAMES",
    "MAX_SCALE",
    "MIN_TILE_MARGIN",
    "PRECISIONS",
    "blend_with_content",
    "clip_look",
    "long_side_size",
    "luminance",
    "resize_images",
    "scaled_size",
    "stylize",
    "transfer_luminance",
]


def stylize(
    net: TransformerNet,
    images: Tensor,
    *,
    strength: float = 1.0,
    preserve_color: bool = False,
    mask: Tensor | None = None,
    scale: float = 1.0,
    frames: str = "independent",
    tile_size: int = 0,
    tile_overlap: int = DEFAULT_OVERLAP,
    chunk_size: int = 4,
    precision: str = "fp32",
    device: torch.device | str | None = None,
    on_progress: ProgressCallback | None = None,
    should_stop: StopCallback | None = None,
    look: NormStats | None = None,
) -> Tensor:
    """Stylise ``[B,C,H,W]`` 0..1 images (C = 1..4) -> ``[B,3,H,W]`` float32 0..1 on the input's device.

    ``strength`` blends with the content (0 returns the input unchanged); ``mask`` (1 = full style, 0 =
    the input exactly; one for every image or one per image, any size: see
    :func:`.masks.fit_mask`) makes it per pixel, ``strength x mask``. ``preserve_color`` keeps the
    content's chroma and takes only the luminance from the style. ``scale`` sets the brush size: the
    network sees the image resized by ``scale`` (0.5: strokes twice as large), the result has the input's
    size. ``frames`` "shared" normalises every image with statistics pooled over the batch (video);
    "flow" also holds the result still along the optical flow between the images, taken as consecutive
    frames. ``look`` (from :func:`clip_look`) gives those pooled statistics instead, for a clip stylised
    in parts.
    ``tile_size`` 0 runs whole images and tiles only after an out-of-memory error (tile sizes are in
    pixels of the resized image); ``tile_overlap`` is rounded up to a multiple of 8. ``precision``
    fp16/bf16 applies on CUDA only (fp32 elsewhere). ``device`` defaults to the network's; the caller's
    network is never moved or left in another mode. ``on_progress(done, total, preview)`` counts network
    passes over tiles x images (``preview``: the first image of each finished chunk, ``[3,H,W]``);
    ``should_stop()`` returning True raises :class:`~.errors.OperationCancelled`.
    """
    _validate(strength, scale, frames, tile_size, tile_overlap, chunk_size, precision)
    content = to_rgb(images).float()
    batch, _, height, width = content.shape
    weights = None if mask is None else fit_mask(mask, batch, height, width)
    if strength == 0 or (weights is not None and not bool(weights.any())):
        return content.clone()
    model, run_device, dtype = _runnable(net, device, precision)
    work_size = scaled_size(height, width, scale)
    pool = frames in POOLED_FRAMES and bool(model.norm_layers())

    def network_input(start: int) -> Tensor:
        return resize_images(content[start : start + chunk_size].to(run_device), work_size)

    was_training = model.training
    model.train(False)
    try:
        with torch.no_grad():
            runner = Runner(model, dtype)
            plan = TilePlan(tile_size // STRIDE * STRIDE, round_up(tile_overlap, OVERLAP_MULTIPLE))
            progress = Progress(batch, on_progress, should_stop)
            stats = look if pool else None
            # one chunk that is the whole batch pools over itself
            if pool and stats is None and batch > chunk_size:
                starts = range(0, batch, chunk_size)
                stats = shared_norm_stats(
                    runner, lambda: map(network_input, starts), batch, work_size, plan, progress
                )
            out = torch.empty_like(content)
            for start in range(0, batch, chunk_size):
                progress.check_stop()
                chunk = content[start : start + chunk_size].to(run_device)
                work = resize_images(chunk, work_size)
                styled = stylize_chunk(runner, work, plan, progress, pool=pool, stats=stats).clamp_(0, 1)
                styled = resize_images(styled, (height, width)).clamp_(0, 1)  # bicubic overshoots
                part = None if weights is None else weights[start : start + chunk.shape[0]]
                out[start : start + chunk.shape[0]] = blend_with_content(
                    chunk, styled, strength=strength, preserve_color=preserve_color, mask=part
                ).to(out.device)
                progress.chunk_done(out[start].cpu())
    finally:
        model.train(was_training)
    if frames == "flow":
        out = hold_still(content, out, should_stop=progress.should_stop)
    return out


def clip_look(
    net: TransformerNet,
    sample: Tensor,
    *,
    scale: float = 1.0,
    tile_size: int = 0,
    tile_overlap: int = DEFAULT_OVERLAP,
    chunk_size: int = 4,
    precision: str = "fp32",
    device: torch.device | str | None = None,
) -> NormStats | None:
    """The statistics ``frames="shared"`` pools over a batch, measured on ``sample`` (frames spread
    over a clip, ``[B,C,H,W]``), for :func:`stylize`'s ``look``; None for a network without per-image
    statistics."""
    _validate(1.0, scale, "shared", tile_size, tile_overlap, chunk_size, precision)
    content = to_rgb(sample).float()
    model, run_device, dtype = _runnable(net, device, precision)
    if not model.norm_layers():
        return None
    work_size = scaled_size(*content.shape[-2:], scale)

    def chunks() -> Iterator[Tensor]:
        for start in range(0, content.shape[0], chunk_size):
            yield resize_images(content[start : start + chunk_size].to(run_device), work_size)

    was_training = model.training
    model.train(False)
    try:
        with torch.no_grad():
            return shared_norm_stats(
                Runner(model, dtype),
                chunks,
                content.shape[0],
                work_size,
                TilePlan(tile_size // STRIDE * STRIDE, round_up(tile_overlap, OVERLAP_MULTIPLE)),
                Progress(content.shape[0], None, None),
            )
    finally:
        model.train(was_training)


def _runnable(
    net: TransformerNet, device: torch.device | str | None, precision: str
) -> tuple[TransformerNet, torch.device, torch.dtype]:
    """The network on ``device`` (default: its own; a copy when that differs, so the caller's stays where
    it is), that device, and the dtype ``precision`` means there (fp32 off CUDA)."""
    run_device = torch.device(device) if device is not None else next(net.parameters()).device
    dtype = PRECISIONS[precision] if run_device.type == "cuda" else torch.float32
    on_device = same_device(next(net.parameters()).device, run_device)
    return (net if on_device else copy.deepcopy(net).to(run_device)), run_device, dtype


def _validate(
    strength: float,
    scale: float,
    frames: str,
    tile_size: int,
    tile_overlap: int,
    chunk_size: int,
    precision: str,
) -> None:
    if not 0.0 <= strength <= 1.0:
        raise SettingsError(f"strength must be between 0 and 1, got {strength}")
    if not 0.0 < scale <= MAX_SCALE:
        raise SettingsError(
            f"scale must be above 0 and at most {MAX_SCALE:g} (0.5: strokes twice as large), got {scale}"
        )
    if frames not in FRAMES:
        raise SettingsError(f"frames must be one of {FRAMES}, got {frames!r}")
    if precision not in PRECISIONS:
        raise SettingsError(f"precision must be one of {tuple(PRECISIONS)}, got {precision!r}")
    if chunk_size < 1:
        raise SettingsError(f"chunk_size must be at least 1, got {chunk_size}")
    if tile_overlap < 0:
        raise SettingsError(f"tile_overlap must be >= 0, got {tile_overlap}")
    smallest = round_up(tile_overlap, OVERLAP_MULTIPLE) + MIN_TILE_MARGIN
    if tile_size and tile_size < smallest:
        raise SettingsError(
            f"tile_size must be 0 (automatic) or at least tile_overlap + {MIN_TILE_MARGIN} = {smallest}, "
            f"got {tile_size}"
        )


def scaled_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """The size the network works at for ``scale``: each side rounded, at least 1 pixel."""
    return max(1, round(height * scale)), max(1, round(width * scale))


def long_side_size(height: int, width: int, long_side: int) -> tuple[int, int]:
    """``(h, w)`` resized so that the longer side is ``long_side`` (0: unchanged), aspect kept."""
    if long_side == 0:
        return height, width
    return scaled_size(height, width, long_side / max(height, width))


def resize_images(images: Tensor, size: tuple[int, int]) -> Tensor:
    """``[B,C,H,W]`` resized to ``size``: antialiased bilinear when shrinking, bicubic when enlarging
    (not clamped); the same tensor when the size already fits."""
    if tuple(images.shape[-2:]) == tuple(size):
        return images
    if size[0] <= images.shape[-2] and size[1] <= images.shape[-1]:
        return F.interpolate(images, size=size, mode="bilinear", align_corners=False, antialias=True)
    return F.interpolate(images, size=size, mode="bicubic", align_corners=False)


def blend_with_content(
    content: Tensor,
    styled: Tensor,
    *,
    strength: float = 1.0,
    preserve_color: bool = False,
    mask: Tensor | None = None,
) -> Tensor:
    """The final image from the content and the (clamped) stylised image, both ``[B,3,H,W]``: the
    content's colours if ``preserve_color``, then the per-pixel blend ``strength x mask``
    (:func:`.masks.apply_strength`: where it is 0 the content comes back exactly)."""
    if preserve_color:
        styled = transfer_luminance(content, styled)
    return apply_strength(content, styled, strength, mask)


def luminance(images: Tensor) -> Tensor:
    """BT.601 luma ``[B,1,H,W]`` of RGB images."""
    weights = images.new_tensor(LUMA).view(1, 3, 1, 1)
    return (images * weights).sum(dim=1, keepdim=True)


def transfer_luminance(content: Tensor, styled: Tensor) -> Tensor:
    """The content's colours with the stylised luminance (YCbCr: keep Cb/Cr, replace Y).

    YCbCr is linear in RGB and Y enters R, G and B with coefficient 1, so replacing Y adds the
    luminance difference to every channel.
    """
    return content + (luminance(styled) - luminance(content))
