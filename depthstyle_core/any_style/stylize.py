"""Stylise photos with any painting in one forward pass of the built-in network (MicroAST).

The painting (or a blend of several) is turned into the decoder's signals once; each photo then takes
one pass. Strength, masks and depth act through the signals and a final pixel blend (:mod:`.strength`).
Huge photos are tiled and video frames share statistics exactly as with a trained style network
(:mod:`..tiling`, :mod:`.styled_pass`): tiled equals whole, and ``frames="shared"`` pools the content
statistics at both AdaIN points over the whole batch, so a clip does not flicker; ``frames="flow"`` also
holds the texture still along the optical flow (:mod:`..video.hold`). A clip painted in parts keeps one
look with :func:`clip_look` (statistics measured once on frames spread over it) passed as ``look``.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ..devices import same_device
from ..errors import InputImageError, SettingsError
from ..images import to_rgb
from ..models.microast import MicroAST, MicroASTParts, StyleSignals
from ..models.padding import STRIDE
from ..runtimes.choice import AUTO, OPENVINO, chosen_runtime
from ..stylize import (
    FRAMES,
    MAX_SCALE,
    POOLED_FRAMES,
    PRECISIONS,
    blend_with_content,
    resize_images,
    scaled_size,
)
from ..tiling import (
    DEFAULT_OVERLAP,
    SMALLEST_TILE,
    Progress,
    ProgressCallback,
    Runner,
    StopCallback,
    TilePlan,
    shared_norm_stats,
    stylize_chunk,
)
from ..upsample import guided_enlarge
from ..video.hold import hold_still
from . import DEFAULT_STYLE_SIZE
from .runtime import network_parts
from .signals import Paintings, own_signals, style_signals
from .strength import check_fraction, pixel_amount, signal_amount, strength_map
from .styled_pass import Stats, StyledPass


@dataclass(frozen=True)
class ClipLook:
    """One look for every part of a clip: what ``frames="shared"`` pools over a batch (the statistics at
    both AdaIN points and, for partial strength, the photos' own signals), measured on frames spread
    over the clip by :func:`clip_look`."""

    stats: Stats
    own: StyleSignals | None


def stylize_any(
    model: MicroAST,
    photo: Tensor,
    style: Paintings | StyleSignals,
    *,
    strength: float = 1.0,
    mask: Tensor | None = None,
    depth: Tensor | None = None,
    depth_preserve: float = 0.0,
    style_size: int = DEFAULT_STYLE_SIZE,
    style_weights: Sequence[float] | None = None,
    preserve_color: bool = False,
    frames: str = "independent",
    scale: float = 1.0,
    tile: int = 0,
    chunk_size: int = 4,
    precision: str = "fp32",
    device: torch.device | str | None = None,
    on_progress: ProgressCallback | None = None,
    should_stop: StopCallback | None = None,
    look: ClipLook | None = None,
    runtime: str = AUTO,
) -> Tensor:
    """Paint ``[B,C,H,W]`` 0..1 photos (C = 1..4) in the style of ``style`` -> ``[B,3,H,W]`` float32 0..1
    at the photos' exact size, on the photos' device.

    ``style``: one painting ``[1,C,h,w]``, a batch, or a list of paintings of any sizes; several are
    blended by ``style_weights`` (their signals, not their pictures; default equal shares). Each is
    resized to ``style_size`` on its long side first (0 keeps its size). ``style`` may also be signals
    made once by :func:`style_signals` (to paint many photos with the same painting); ``style_size``
    then still sets the size at which the photos' own signals are taken for partial strength.

    ``strength`` (0 = the photo exactly, 1 = the network's full result), ``mask`` (1 = full style, 0 =
    the photo exactly) and ``depth`` (``[B,1,H,W]`` normalised, near = 1) with ``depth_preserve`` (how
    much of the photo the nearest things keep) make a per-pixel strength, see :mod:`.strength`.
    ``preserve_color`` keeps the photo's colours. ``frames="shared"``: the batch is a video, one look
    for every frame; ``"flow"``: the same, held still along the optical flow (depth, when given, also
    decides what is hidden as things move). ``look`` (from :func:`clip_look`, made with the same
    settings) is the pooled look of a whole clip this batch is a part of. ``scale`` sets the brush size:
    the network paints the photos resized by it (0.5: strokes twice as large) and its result comes back
    to their size, guided by the photos' outlines (:mod:`..upsample`); strength, masks and depth act at
    the photos' size. ``tile`` > 0 runs tiles of that side (in pixels of the resized photos; same
    result, bounded memory); 0 runs whole
    images and tiles only after a CUDA out-of-memory error. ``precision`` fp16/bf16 applies on CUDA
    only. ``on_progress(done, total, preview)`` and ``should_stop()`` work as in
    :func:`..stylize.stylize`. ``runtime`` (:mod:`..runtimes`): ``auto`` runs the network on OpenVINO
    on the CPU when it is installed (same result, faster), else on torch; ``torch`` or ``openvino``
    choose.
    """
    job = _prepare(
        model,
        photo,
        style,
        look,
        strength=strength,
        mask=mask,
        depth=depth,
        depth_preserve=depth_preserve,
        style_size=style_size,
        style_weights=style_weights,
        frames=frames,
        scale=scale,
        tile=tile,
        chunk_size=chunk_size,
        precision=precision,
        device=device,
        runtime=runtime,
    )
    if job is None:
        return _checked_photos(photo).clone()
    progress = Progress(job.content.shape[0], on_progress, should_stop)
    try:
        out = job.run(progress, frames in POOLED_FRAMES, preserve_color, look)
    finally:
        job.net.train(job.was_training)
    if frames == "flow":
        out = hold_still(job.content, out, _depth_plane(depth), should_stop=should_stop)
    return out


def clip_look(
    model: MicroAST,
    sample: Tensor,
    style: Paintings | StyleSignals,
    *,
    strength: float = 1.0,
    mask: Tensor | None = None,
    depth: Tensor | None = None,
    depth_preserve: float = 0.0,
    style_size: int = DEFAULT_STYLE_SIZE,
    style_weights: Sequence[float] | None = None,
    scale: float = 1.0,
    tile: int = 0,
    chunk_size: int = 4,
    precision: str = "fp32",
    device: torch.device | str | None = None,
    runtime: str = AUTO,
) -> ClipLook | None:
    """The look ``frames="shared"`` pools over a batch, measured on ``sample`` (frames spread over a
    clip, with their masks and depth) for :func:`stylize_any`'s ``look`` with the same settings; None
    when those settings leave the photos unchanged (strength 0, an empty mask)."""
    job = _prepare(
        model,
        sample,
        style,
        None,
        strength=strength,
        mask=mask,
        depth=depth,
        depth_preserve=depth_preserve,
        style_size=style_size,
        style_weights=style_weights,
        frames="shared",
        scale=scale,
        tile=tile,
        chunk_size=chunk_size,
        precision=precision,
        device=device,
        runtime=runtime,
    )
    if job is None:
        return None
    try:
        with torch.no_grad():
            return ClipLook(job.pooled_stats(Progress(job.content.shape[0], None, None)), job.own)
    finally:
        job.net.train(job.was_training)


def _prepare(
    model: MicroAST,
    photo: Tensor,
    style: Paintings | StyleSignals,
    look: ClipLook | None,
    *,
    strength: float,
    mask: Tensor | None,
    depth: Tensor | None,
    depth_preserve: float,
    style_size: int,
    style_weights: Sequence[float] | None,
    frames: str,
    scale: float,
    tile: int,
    chunk_size: int,
    precision: str,
    device: torch.device | str | None,
    runtime: str,
) -> _Job | None:
    """Everything a pass over ``photo`` needs, with the network in eval mode (the caller restores
    ``job.was_training``); None when the settings leave the photos as they are."""
    _validate(strength, depth_preserve, style_size, frames, scale, tile, chunk_size, precision)
    run_device = torch.device(device) if device is not None else next(model.parameters()).device
    on_openvino = chosen_runtime(runtime, run_device) == OPENVINO
    content = _checked_photos(photo)
    batch, _, height, width = content.shape
    amount = strength_map(
        strength, batch, height, width, mask=mask, depth=_depth_plane(depth), depth_preserve=depth_preserve
    )
    if strength == 0 or (amount is not None and not bool(amount.any())):
        return None
    compiled = network_parts(model, runtime) if on_openvino else None
    net = runnable(model, run_device, channels_last=compiled is None)
    dtype = PRECISIONS[precision] if run_device.type == "cuda" else torch.float32
    was_training = net.training
    net.train(False)
    parts = compiled or net
    with torch.no_grad():
        painting = style_signals(
            parts, style, style_weights=style_weights, style_size=style_size, device=run_device
        )
        own = None
        if amount is not None or strength < 1:
            if look is not None:
                own = look.own
            else:
                own = own_signals(parts, content, style_size or DEFAULT_STYLE_SIZE, run_device, chunk_size)
                pooled = frames in POOLED_FRAMES
                own = own.map(lambda t: t.mean(dim=0, keepdim=True)) if pooled else own
    plan = TilePlan(tile // STRIDE * STRIDE, DEFAULT_OVERLAP)
    work_size = scaled_size(height, width, scale)
    return _Job(
        net,
        parts,
        content,
        amount,
        painting,
        own,
        strength,
        chunk_size,
        run_device,
        plan,
        dtype,
        work_size,
        was_training,
    )


def runnable(model: MicroAST, device: torch.device, channels_last: bool = True) -> MicroAST:
    """The network to run: ``model`` itself when it is already on ``device`` in channels-last (so a
    prepared or compiled model is used as it is), else a channels-last copy there. Channels-last makes
    the convolutions about 1.35x faster on the CPU (bench/results/any_style_cpu.md); copying 1.9 MB
    leaves the caller's network as it was. Without ``channels_last`` (when torch runs only the small
    modulator) any layout on ``device`` will do."""
    weight = model.content_encoder.enc1[0].conv_layer.weight  # 9x9 over 3 channels: the layout is unambiguous
    in_layout = not channels_last or weight.is_contiguous(memory_format=torch.channels_last)
    if same_device(weight.device, device) and in_layout:
        return model
    return copy.deepcopy(model).to(device=device, memory_format=torch.channels_last)


class _Job:
    """One stylize_any call's inputs, cut into chunks: the network's pass and input for each chunk (the
    photos resized to ``work_size``), and the final blend of its result with the photos at their size."""

    def __init__(
        self,
        net: MicroAST,
        parts: MicroASTParts,
        content: Tensor,
        amount: Tensor | None,
        painting: StyleSignals,
        own: StyleSignals | None,
        strength: float,
        chunk_size: int,
        device: torch.device,
        plan: TilePlan,
        dtype: torch.dtype,
        work_size: tuple[int, int],
        was_training: bool,
    ) -> None:
        self.net, self.parts, self.content, self.amount = net, parts, content, amount
        self.plan, self.dtype, self.work_size, self.was_training = plan, dtype, work_size, was_training
        self.painting, self.own, self.strength = painting, own, strength
        self.chunk_size, self.device = chunk_size, device
        self.uniform = None if amount is not None or own is None else float(signal_amount(strength))

    def pooled_stats(self, progress: Progress) -> Stats:
        """The statistics at both AdaIN points pooled over every photo."""
        batch = self.content.shape[0]
        runner = Runner(self.network_pass(0, True), self.dtype)
        inputs = lambda: map(self.network_input, range(0, batch, self.chunk_size))  # noqa: E731
        return shared_norm_stats(runner, inputs, batch, self.work_size, self.plan, progress)

    def run(self, progress: Progress, shared: bool, preserve_color: bool, look: ClipLook | None) -> Tensor:
        """Every chunk through the network (whole or in tiles), with statistics shared over the batch
        first when ``shared`` (or the clip's ``look``), brought to the photos' size and blended back
        with them."""
        batch = self.content.shape[0]
        stats = look.stats if shared and look is not None else None
        with torch.no_grad():
            if shared and stats is None and batch > self.chunk_size:  # one chunk pools over itself
                stats = self.pooled_stats(progress)
            out = torch.empty_like(self.content)
            for start in range(0, batch, self.chunk_size):
                progress.check_stop()
                x = self.network_input(start)
                runner = Runner(self.network_pass(start, shared), self.dtype)
                styled = stylize_chunk(runner, x, self.plan, progress, pool=shared, stats=stats).clamp_(0, 1)
                end = start + x.shape[0]
                styled = self.full_size(styled, x, start, end)
                out[start:end] = self.blend(start, end, styled, preserve_color).to(out.device)
                progress.chunk_done(out[start].cpu())
            return out

    def network_pass(self, start: int, shared: bool) -> StyledPass:
        """The network with the signals of the chunk at ``start`` (pooled own signals for every chunk)."""
        own = self.own
        if own is not None and not shared:
            own = own.select(slice(start, start + self.chunk_size))
        return StyledPass(self.parts, self.painting, own, self.uniform)

    def network_input(self, start: int) -> Tensor:
        """The chunk at ``start`` on the device at the working size, with its strength map as a fourth
        channel if any; channels-last for torch (another runtime takes the plain layout)."""
        chunk = self.content[start : start + self.chunk_size]
        if self.amount is not None:
            chunk = torch.cat([chunk, self.amount[start : start + self.chunk_size].to(chunk.device)], dim=1)
        chunk = resize_images(chunk.to(self.device), self.work_size).clamp(0, 1)
        return chunk.contiguous(memory_format=torch.channels_last) if self.parts is self.net else chunk

    def full_size(self, styled: Tensor, small: Tensor, start: int, end: int) -> Tensor:
        """The network's result for photos ``start:end`` (painted on ``small``, their working-size copies)
        at their size: enlarged guided by their outlines, or shrunk (antialiased) for finer strokes."""
        size = tuple(self.content.shape[-2:])
        if tuple(styled.shape[-2:]) == size:
            return styled
        if styled.shape[-2] >= size[0] and styled.shape[-1] >= size[1]:
            return resize_images(styled, size).clamp_(0, 1)
        return guided_enlarge(styled, small[:, :3], self.content[start:end].to(self.device))

    def blend(self, start: int, end: int, styled: Tensor, preserve_color: bool) -> Tensor:
        """The network's (clamped) result for photos ``start:end`` blended back with them."""
        photos = self.content[start:end].to(self.device)
        if self.amount is None:
            return blend_with_content(
                photos, styled, strength=float(pixel_amount(self.strength)), preserve_color=preserve_color
            )
        weights = pixel_amount(self.amount[start:end]).to(self.device)
        return blend_with_content(photos, styled, mask=weights, preserve_color=preserve_color)


def _validate(
    strength: float,
    depth_preserve: float,
    style_size: int,
    frames: str,
    scale: float,
    tile: int,
    chunk_size: int,
    precision: str,
) -> None:
    check_fraction("strength", strength)
    check_fraction("depth_preserve", depth_preserve)
    if style_size < 0:
        raise SettingsError(
            f"style_size must be 0 (keep the painting's size) or a number of pixels, got {style_size}"
        )
    if frames not in FRAMES:
        raise SettingsError(f"frames must be one of {FRAMES}, got {frames!r}")
    if not 0.0 < scale <= MAX_SCALE:
        raise SettingsError(
            f"scale must be above 0 and at most {MAX_SCALE:g} (0.5: strokes twice as large), got {scale}"
        )
    if tile and tile < SMALLEST_TILE:
        raise SettingsError(f"tile must be 0 (whole images) or at least {SMALLEST_TILE} pixels, got {tile}")
    if chunk_size < 1:
        raise SettingsError(f"chunk_size must be at least 1, got {chunk_size}")
    if precision not in PRECISIONS:
        raise SettingsError(f"precision must be one of {tuple(PRECISIONS)}, got {precision!r}")


def _checked_photos(photo: Tensor) -> Tensor:
    content = to_rgb(photo).float()
    if content.shape[0] == 0 or content.shape[-1] == 0 or content.shape[-2] == 0:
        raise InputImageError(f"no photo to stylise: got an empty batch of shape {tuple(photo.shape)}")
    if not bool(torch.isfinite(content).all()):
        raise InputImageError("the photo contains NaN or infinite values; give an image with values 0..1")
    return content


def _depth_plane(depth: Tensor | None) -> Tensor | None:
    """Depth as one channel: a 3-channel depth image (ComfyUI's) is averaged."""
    if depth is None or depth.ndim != 4 or depth.shape[1] == 1:
        return depth
    return depth.float().mean(dim=1, keepdim=True)
