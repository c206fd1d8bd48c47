"""Apply a trained style network to images: batching, strength, colour preservation, tiling, OOM recovery.

Tiling is seam-free. Instance norm normalises with statistics of the whole image, so every tile is
run with the statistics of the whole image rather than its own. A tile then differs from the untiled
result only within :data:`RECEPTIVE_RADIUS` pixels of its border, which the overlap (default
:data:`DEFAULT_OVERLAP`, more than the receptive field) discards: tiled equals untiled to float precision.

The whole-image statistics come from one pass over the whole image when it has at most
:data:`STATS_MAX_PIXELS` pixels and memory allows. Otherwise they are built from tiles, one norm layer at
a time (a layer's statistics depend on all earlier layers): exact, memory bounded by the tile, but
about ``len(norm_layers)`` tile passes of extra work, paid only by images too large for the device.
On a CUDA out-of-memory error the tile side is halved and the chunk retried.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from .errors import OperationCancelled
from .images import to_rgb
from .models.transformer_net import RECEPTIVE_RADIUS, STRIDE, NormStats, TransformerNet, padded_size

# torch >= 2.5 names it torch.OutOfMemoryError; earlier versions only torch.cuda.OutOfMemoryError
OutOfMemoryError = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)
PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
STATS_MAX_PIXELS = 2048 * 2048  # largest image whose statistics are taken in one pass
OVERLAP_MULTIPLE = 2 * STRIDE  # half the overlap stays a multiple of the network's stride
DEFAULT_OVERLAP = 2 * RECEPTIVE_RADIUS + OVERLAP_MULTIPLE  # 128
MIN_TILE_MARGIN = 32  # a tile must be at least this much larger than the overlap
LUMA = (0.299, 0.587, 0.114)  # BT.601

ProgressCallback = Callable[[int, int, "Tensor | None"], None]
StopCallback = Callable[[], bool]


def stylize(
    net: TransformerNet,
    images: Tensor,
    *,
    strength: float = 1.0,
    preserve_color: bool = False,
    tile_size: int = 0,
    tile_overlap: int = DEFAULT_OVERLAP,
    chunk_size: int = 4,
    precision: str = "fp32",
    device: torch.device | str | None = None,
    on_progress: ProgressCallback | None = None,
    should_stop: StopCallback | None = None,
) -> Tensor:
    """Stylise ``[B,C,H,W]`` 0..1 images (C = 1..4) -> ``[B,3,H,W]`` float32 0..1 on the input's device.

    ``strength`` blends with the content (0 returns the input unchanged); ``preserve_color`` keeps the
    content's chroma and takes only the luminance from the style. ``tile_size`` 0 runs whole images and
    tiles only after an out-of-memory error; ``tile_overlap`` is rounded up to a multiple of 8.
    ``precision`` fp16/bf16 applies on CUDA only (fp32 elsewhere). ``device`` defaults to the network's;
    the caller's network is never moved or left in another mode. ``on_progress(done, total, preview)``
    counts network passes over tiles x images (``preview``: the first image of each finished chunk,
    ``[3,H,W]``); ``should_stop()`` returning True raises :class:`OperationCancelled`.
    """
    _validate(strength, tile_size, tile_overlap, chunk_size, precision)
    content = to_rgb(images).float()
    if strength == 0:
        return content.clone()
    run_device = torch.device(device) if device is not None else next(net.parameters()).device
    dtype = PRECISIONS[precision] if run_device.type == "cuda" else torch.float32
    model = net if next(net.parameters()).device == run_device else copy.deepcopy(net).to(run_device)
    was_training = model.training
    model.train(False)
    try:
        with torch.no_grad():
            plan = _TilePlan(tile_size // STRIDE * STRIDE, _round_up(tile_overlap, OVERLAP_MULTIPLE))
            progress = _Progress(content.shape[0], on_progress, should_stop)
            out = torch.empty_like(content)
            for start in range(0, content.shape[0], chunk_size):
                progress.check_stop()
                chunk = content[start : start + chunk_size].to(run_device)
                styled = _stylize_chunk(_Runner(model, dtype), chunk, plan, progress).clamp_(0, 1)
                out[start : start + chunk.shape[0]] = blend_with_content(
                    chunk, styled, strength, preserve_color
                ).to(out.device)
                progress.chunk_done(out[start].cpu())
            return out
    finally:
        model.train(was_training)


def _validate(strength: float, tile_size: int, tile_overlap: int, chunk_size: int, precision: str) -> None:
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be between 0 and 1, got {strength}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {tuple(PRECISIONS)}, got {precision!r}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
    if tile_overlap < 0:
        raise ValueError(f"tile_overlap must be >= 0, got {tile_overlap}")
    smallest = _round_up(tile_overlap, OVERLAP_MULTIPLE) + MIN_TILE_MARGIN
    if tile_size and tile_size < smallest:
        raise ValueError(
            f"tile_size must be 0 (automatic) or at least tile_overlap + {MIN_TILE_MARGIN} = {smallest}, "
            f"got {tile_size}"
        )


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


class _Runner:
    """Runs the network's passes in the requested precision (autocast on CUDA)."""

    def __init__(self, net: TransformerNet, dtype: torch.dtype) -> None:
        self.net = net
        self.dtype = dtype

    def _autocast(self, x: Tensor) -> torch.autocast:
        return torch.autocast(x.device.type, dtype=self.dtype, enabled=self.dtype != torch.float32)

    def __call__(self, x: Tensor, stats: NormStats | None = None) -> Tensor:
        with self._autocast(x):
            y = self.net(x, stats).float()
        if self.dtype != torch.float32 and not bool(torch.isfinite(y).all()):
            y = self.net(x, stats).float()  # fp16 overflow: this tile again in fp32
        return y

    def norm_stats(self, x: Tensor) -> NormStats:
        with self._autocast(x):
            return self.net.norm_stats(x)

    def norm_input(self, x: Tensor, layer: str, stats: NormStats) -> Tensor:
        with self._autocast(x):
            return self.net.norm_input(x, layer, stats)


@dataclass(frozen=True)
class _Span:
    """One tile along one axis: the tile covers [start, end) and contributes [keep_start, keep_end)."""

    start: int
    end: int
    keep_start: int
    keep_end: int


def _spans(length: int, tile: int, overlap: int) -> list[_Span]:
    """Tiles along one axis: origins on multiples of STRIDE (the network's pixel grid), step
    ``tile - overlap``; each keeps its part up to half the overlap from a neighbour, so kept parts tile
    the axis."""
    if length <= tile:
        return [_Span(0, length, 0, length)]
    starts = [0]
    while starts[-1] + tile < length:
        starts.append(starts[-1] + tile - overlap)
    ends = [min(start + tile, length) for start in starts]
    keeps = [0] + [start + overlap // 2 for start in starts[1:]] + [length]
    return [_Span(s, e, keeps[i], keeps[i + 1]) for i, (s, e) in enumerate(zip(starts, ends, strict=True))]


@dataclass
class _TilePlan:
    """Current tile side (0: whole images) and the overlap between neighbouring tiles."""

    size: int
    overlap: int

    def active(self, height: int, width: int) -> bool:
        return self.size > 0 and (height > self.size or width > self.size)

    def grid(self, height: int, width: int) -> tuple[list[_Span], list[_Span]]:
        return _spans(height, self.size, self.overlap), _spans(width, self.size, self.overlap)

    def halve(self, height: int, width: int, error: BaseException) -> None:
        """Halve the tile side after an out-of-memory error; re-raise when it cannot get smaller."""
        current = self.size if self.active(height, width) else max(height, width)
        smaller = current // 2 // STRIDE * STRIDE
        if smaller < self.overlap + MIN_TILE_MARGIN:
            raise error
        self.size = smaller


class _Progress:
    """Counts network passes: each image of a chunk takes ``steps`` passes (tiles x layers)."""

    def __init__(
        self, total_images: int, on_progress: ProgressCallback | None, should_stop: StopCallback | None
    ):
        self.total_images = total_images
        self.on_progress = on_progress
        self.should_stop = should_stop
        self.images_done = 0
        self.chunk_images = 0
        self.steps = 1
        self.steps_done = 0

    def check_stop(self) -> None:
        if self.should_stop is not None and self.should_stop():
            raise OperationCancelled(
                f"stylisation stopped after {self.images_done} of {self.total_images} images"
            )

    def start_chunk(self, chunk_images: int, steps: int) -> None:
        self.chunk_images, self.steps, self.steps_done = chunk_images, steps, 0

    def step(self) -> None:
        """One pass over one tile done; also the point where a stop request is honoured."""
        self.steps_done += 1
        if self.steps_done < self.steps:  # the last one is reported by chunk_done, with a preview
            self._emit(self.images_done * self.steps + self.steps_done * self.chunk_images, None)
        self.check_stop()

    def chunk_done(self, preview: Tensor) -> None:
        self.images_done += self.chunk_images
        self._emit(self.images_done * self.steps, preview)

    def _emit(self, done: int, preview: Tensor | None) -> None:
        if self.on_progress is not None:
            self.on_progress(done, self.total_images * self.steps, preview)


def _free_cache() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _stylize_chunk(runner: _Runner, x: Tensor, plan: _TilePlan, progress: _Progress) -> Tensor:
    """Whole images if the plan allows, else tiles; out-of-memory halves the tile and restarts the chunk
    (statistics already computed are kept: they do not depend on the tile size)."""
    height, width = x.shape[-2:]
    stats: NormStats = {}
    complete = False
    one_pass = height * width <= STATS_MAX_PIXELS
    while True:
        try:
            if not plan.active(height, width):
                progress.start_chunk(x.shape[0], 1)
                return runner(x)
            rows, cols = plan.grid(height, width)
            tiles = len(rows) * len(cols)
            if not complete and one_pass:
                one_pass = False
                complete = _one_pass_norm_stats(runner, x, stats)
            if complete:
                progress.start_chunk(x.shape[0], tiles)
            else:
                progress.start_chunk(x.shape[0], tiles * (1 + len(runner.net.norm_layers()) - len(stats)))
                _tiled_norm_stats(runner, x, rows, cols, stats, progress)
                complete = True
            return _run_tiles(runner, x, stats, rows, cols, progress)
        except OutOfMemoryError as error:
            _free_cache()
            one_pass = False  # memory is short: a whole-image statistics pass would not fit either
            plan.halve(height, width, error)


def _one_pass_norm_stats(runner: _Runner, x: Tensor, stats: NormStats) -> bool:
    """Whole-image statistics in one pass; False (and nothing stored) when that runs out of memory."""
    try:
        stats.update(runner.norm_stats(x))
    except OutOfMemoryError:
        _free_cache()
        return False
    return True


def _tiled_norm_stats(
    runner: _Runner, x: Tensor, rows: list[_Span], cols: list[_Span], stats: NormStats, progress: _Progress
) -> None:
    """Fill ``stats`` with the whole-image statistics of every instance-norm layer not in it yet, from tiles.

    For each layer, every tile's kept part of that layer's input is summarised (mean, variance, count) and
    the summaries are merged exactly (Chan et al.'s pairwise update, in float64). The kept parts of the
    last row/column extend over the network's internal padding, as they do in the whole-image pass.
    """
    for layer in runner.net.norm_layers():
        if layer in stats:
            continue
        count, mean, m2 = 0, None, None
        for row in rows:
            for col in cols:
                act = runner.norm_input(x[..., row.start : row.end, col.start : col.end], layer, stats)
                factor = padded_size(row.end - row.start) // act.shape[-2]
                top, bottom = _kept(row, rows, factor)
                left, right = _kept(col, cols, factor)
                var_t, mean_t = torch.var_mean(
                    act[..., top:bottom, left:right].double(), dim=(2, 3), correction=0
                )
                n = (bottom - top) * (right - left)
                if mean is None:
                    count, mean, m2 = n, mean_t, var_t * n
                else:
                    delta = mean_t - mean
                    total = count + n
                    mean = mean + delta * (n / total)
                    m2 = m2 + var_t * n + delta.square() * (count * n / total)
                    count = total
                progress.step()
        shape = (*mean.shape, 1, 1)
        stats[layer] = (mean.float().view(shape), (m2 / count).float().view(shape))


def _kept(span: _Span, spans: list[_Span], factor: int) -> tuple[int, int]:
    """The kept range of a tile in the coordinates of a layer ``factor`` times coarser than the input."""
    end = span.keep_end - span.start
    if span is spans[-1]:
        end = padded_size(span.end - span.start)
    return (span.keep_start - span.start) // factor, end // factor


def _run_tiles(
    runner: _Runner, x: Tensor, stats: NormStats, rows: list[_Span], cols: list[_Span], progress: _Progress
) -> Tensor:
    """Run each tile with the shared statistics and keep its inner part."""
    out = torch.empty(x.shape, dtype=torch.float32, device=x.device)
    for row in rows:
        for col in cols:
            tile = runner(x[..., row.start : row.end, col.start : col.end], stats)
            out[..., row.keep_start : row.keep_end, col.keep_start : col.keep_end] = tile[
                ...,
                row.keep_start - row.start : row.keep_end - row.start,
                col.keep_start - col.start : col.keep_end - col.start,
            ]
            progress.step()
    return out


def blend_with_content(content: Tensor, styled: Tensor, strength: float, preserve_color: bool) -> Tensor:
    """The final image from a fully stylised one: the content's colours with the stylised luminance if
    ``preserve_color``, then a blend towards the content (``strength`` 1: all style), clamped to 0..1.
    Shared by every way of stylising, so the two options mean the same everywhere."""
    if preserve_color:
        styled = transfer_luminance(content, styled)
    if strength != 1.0:
        styled = torch.lerp(content, styled, strength)
    return styled.clamp(0, 1)


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
