"""Running the style network over chunks and tiles with the right instance-norm statistics.

Tiling is seam-free. Instance norm normalises with statistics of the whole image, so every tile is
run with the statistics of the whole image rather than its own. A tile then differs from the untiled
result only within :data:`RECEPTIVE_RADIUS` pixels of its border, which the overlap (default
:data:`DEFAULT_OVERLAP`, more than the receptive field) discards: tiled equals untiled to float precision.

The whole-image statistics come from one pass over the whole image when it has at most
:data:`STATS_MAX_PIXELS` pixels and memory allows. Otherwise they are built from tiles, one norm layer at
a time (a layer's statistics depend on all earlier layers): exact, memory bounded by the tile, but
about ``len(norm_layers)`` tile passes of extra work, paid only by images too large for the device.
On a CUDA out-of-memory error the tile side is halved and the chunk retried.

Statistics pooled over a whole batch (``frames="shared"``, for video) are built the same way, with the
chunks of the batch as further pieces: one pass when the batch has at most :data:`STATS_MAX_PIXELS`
pixels, else layer by layer over chunks and tiles. Either way they equal the statistics of one pass over
the whole batch, so the result does not depend on the chunk or tile size.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from .errors import OperationCancelled
from .models.padding import STRIDE, padded_size
from .models.transformer_net import RECEPTIVE_RADIUS, NormStats

# torch >= 2.5 names it torch.OutOfMemoryError; earlier versions only torch.cuda.OutOfMemoryError
OutOfMemoryError = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)
STATS_MAX_PIXELS = 2048 * 2048  # largest image (or batch, when pooled) whose statistics take one pass
OVERLAP_MULTIPLE = 2 * STRIDE  # half the overlap stays a multiple of the network's stride
DEFAULT_OVERLAP = 2 * RECEPTIVE_RADIUS + OVERLAP_MULTIPLE  # 128
MIN_TILE_MARGIN = 32  # a tile must be at least this much larger than the overlap
SMALLEST_TILE = DEFAULT_OVERLAP + MIN_TILE_MARGIN  # with the default overlap (the overlap eats the rest)

ProgressCallback = Callable[[int, int, "Tensor | None"], None]
StopCallback = Callable[[], bool]


class TileableNet(Protocol):
    """A network the tiler can drive: image in, image out, whose only whole-image quantities are the
    statistics of its normalisation layers (TransformerNet's instance norms, MicroAST's AdaIN points).

    ``variance_correction`` is the network's variance convention (0: population, 1: unbiased), so that
    statistics merged from tiles equal the network's own.
    """

    variance_correction: int

    def __call__(self, x: Tensor, stats: NormStats | None = None, *, pool_batch: bool = False) -> Tensor: ...

    def norm_layers(self) -> list[str]: ...

    def norm_stats(self, x: Tensor, pooled: bool = False) -> NormStats: ...

    def norm_input(self, x: Tensor, layer: str, stats: NormStats | None = None) -> Tensor: ...


def round_up(value: int, multiple: int) -> int:
    """``value`` rounded up to a multiple of ``multiple``."""
    return -(-value // multiple) * multiple


class Runner:
    """Runs the network's passes in the requested precision (autocast on CUDA)."""

    def __init__(self, net: TileableNet, dtype: torch.dtype) -> None:
        self.net = net
        self.dtype = dtype

    def _autocast(self, x: Tensor) -> torch.autocast:
        return torch.autocast(x.device.type, dtype=self.dtype, enabled=self.dtype != torch.float32)

    def _forward(self, x: Tensor, stats: NormStats | None, pool: bool) -> Tensor:
        return self.net(x, pool_batch=True) if pool else self.net(x, stats)

    def __call__(self, x: Tensor, stats: NormStats | None = None, pool: bool = False) -> Tensor:
        """The network's output for ``x``: with ``stats``, with statistics pooled over ``x`` (``pool``),
        or with each image's own statistics."""
        with self._autocast(x):
            y = self._forward(x, stats, pool).float()
        if self.dtype != torch.float32 and not bool(torch.isfinite(y).all()):
            y = self._forward(x, stats, pool).float()  # fp16 overflow: this tile again in fp32
        return y

    def norm_stats(self, x: Tensor, pooled: bool = False) -> NormStats:
        with self._autocast(x):
            return self.net.norm_stats(x, pooled=True) if pooled else self.net.norm_stats(x)

    def norm_input(self, x: Tensor, layer: str, stats: NormStats) -> Tensor:
        with self._autocast(x):
            return self.net.norm_input(x, layer, stats)


@dataclass(frozen=True)
class Span:
    """One tile along one axis: the tile covers [start, end) and contributes [keep_start, keep_end)."""

    start: int
    end: int
    keep_start: int
    keep_end: int


def spans(length: int, tile: int, overlap: int) -> list[Span]:
    """Tiles along one axis: origins on multiples of STRIDE (the network's pixel grid), step
    ``tile - overlap``; each keeps its part up to half the overlap from a neighbour, so kept parts tile
    the axis."""
    if length <= tile:
        return [Span(0, length, 0, length)]
    starts = [0]
    while starts[-1] + tile < length:
        starts.append(starts[-1] + tile - overlap)
    ends = [min(start + tile, length) for start in starts]
    keeps = [0] + [start + overlap // 2 for start in starts[1:]] + [length]
    return [Span(s, e, keeps[i], keeps[i + 1]) for i, (s, e) in enumerate(zip(starts, ends, strict=True))]


@dataclass
class TilePlan:
    """Current tile side (0: whole images) and the overlap between neighbouring tiles."""

    size: int
    overlap: int

    def active(self, height: int, width: int) -> bool:
        return self.size > 0 and (height > self.size or width > self.size)

    def grid(self, height: int, width: int) -> tuple[list[Span], list[Span]]:
        """The tiles along each axis; one whole-image span per axis when tiling is not active."""
        if not self.active(height, width):
            return [Span(0, height, 0, height)], [Span(0, width, 0, width)]
        return spans(height, self.size, self.overlap), spans(width, self.size, self.overlap)

    def halve(self, height: int, width: int, error: BaseException) -> None:
        """Halve the tile side after an out-of-memory error; re-raise when it cannot get smaller."""
        current = self.size if self.active(height, width) else max(height, width)
        smaller = current // 2 // STRIDE * STRIDE
        if smaller < self.overlap + MIN_TILE_MARGIN:
            raise error
        self.size = smaller


class Progress:
    """Counts network passes: each image of a chunk takes ``steps`` passes (tiles x layers). Statistics
    pooled over the whole batch are gathered first and counted before the chunks."""

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
        self.before = 0  # passes of the batch-statistics phase, done before the first chunk
        self.planned = 0

    def check_stop(self) -> None:
        if self.should_stop is not None and self.should_stop():
            raise OperationCancelled(
                f"stylisation stopped after {self.images_done} of {self.total_images} images"
            )

    def start_stats(self, passes: int, output_steps: int) -> None:
        """The batch-statistics phase takes ``passes`` image passes; the output then ``output_steps`` each."""
        self.planned = self.before + passes + self.total_images * output_steps

    def stats_step(self, images: int) -> None:
        """One statistics pass over ``images`` images done; also a point where a stop is honoured."""
        self.before += images
        self._send(self.before, max(self.planned, self.before), None)
        self.check_stop()

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
        self._send(self.before + done, self.before + self.total_images * self.steps, preview)

    def _send(self, done: int, total: int, preview: Tensor | None) -> None:
        if self.on_progress is not None:
            self.on_progress(done, total, preview)


def working_pixels(batch: int, pixels: float, tile: int, shared: bool, chunk: int) -> int:
    """Pixels a network holds activations for at once: one chunk of images (or of tiles, with ``tile``),
    or the whole batch when statistics shared over it take one pass. ``pixels`` per image at the
    network's working size. Callers multiply by their network's bytes per pixel to free memory first."""
    work = min(pixels, tile * tile) if tile else pixels
    work *= min(batch, chunk)
    if shared and batch > chunk:
        work = max(work, min(batch * pixels, STATS_MAX_PIXELS))
    return int(work)


def free_cache() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def stylize_chunk(
    runner: Runner,
    x: Tensor,
    plan: TilePlan,
    progress: Progress,
    *,
    pool: bool = False,
    stats: NormStats | None = None,
) -> Tensor:
    """The network's output for the images ``x``: whole if the plan allows, else tiles.

    ``stats`` (statistics pooled over a batch larger than this chunk) are used as they are. Without them
    each image has its own statistics, or with ``pool`` statistics pooled over ``x``. Out-of-memory halves
    the tile and restarts the chunk (statistics already computed are kept: they do not depend on the tile
    size).
    """
    height, width = x.shape[-2:]
    own: NormStats = dict(stats) if stats is not None else {}
    complete = stats is not None
    one_pass = height * width <= STATS_MAX_PIXELS
    while True:
        try:
            if not plan.active(height, width):
                progress.start_chunk(x.shape[0], 1)
                return runner(x, own) if complete else runner(x, pool=pool)
            rows, cols = plan.grid(height, width)
            tiles = len(rows) * len(cols)
            if not complete and one_pass:
                one_pass = False
                complete = _one_pass_norm_stats(runner, x, own, pool)
            if complete:
                progress.start_chunk(x.shape[0], tiles)
            else:
                progress.start_chunk(x.shape[0], tiles * (1 + len(runner.net.norm_layers()) - len(own)))
                layerwise_norm_stats(runner, lambda: [x], rows, cols, own, lambda _: progress.step(), pool)
                complete = True
            return _run_tiles(runner, x, own, rows, cols, progress)
        except OutOfMemoryError as error:
            free_cache()
            one_pass = False  # memory is short: a whole-image statistics pass would not fit either
            plan.halve(height, width, error)


def shared_norm_stats(
    runner: Runner,
    chunks: Callable[[], Iterable[Tensor]],
    images: int,
    size: tuple[int, int],
    plan: TilePlan,
    progress: Progress,
) -> NormStats:
    """Statistics of every instance-norm layer pooled over all ``images`` images of ``size`` that
    ``chunks()`` yields (on the compute device), equal to one pass over the whole batch."""
    height, width = size
    stats: NormStats = {}
    one_pass = images * height * width <= STATS_MAX_PIXELS
    while True:
        try:
            rows, cols = plan.grid(height, width)
            tiles = len(rows) * len(cols)
            if one_pass:
                one_pass = False
                progress.start_stats(images, tiles)
                if _one_pass_norm_stats(runner, torch.cat(list(chunks())), stats, pooled=True):
                    progress.stats_step(images)
                    return stats
            layers_left = len(runner.net.norm_layers()) - len(stats)
            progress.start_stats(images * tiles * layers_left, tiles)
            layerwise_norm_stats(runner, chunks, rows, cols, stats, progress.stats_step, pooled=True)
            return stats
        except OutOfMemoryError as error:
            free_cache()
            one_pass = False
            plan.halve(height, width, error)


def _one_pass_norm_stats(runner: Runner, x: Tensor, stats: NormStats, pooled: bool) -> bool:
    """Whole-image statistics in one pass; False (and nothing stored) when that runs out of memory."""
    try:
        stats.update(runner.norm_stats(x, pooled))
    except OutOfMemoryError:
        free_cache()
        return False
    return True


def layerwise_norm_stats(
    runner: Runner,
    chunks: Callable[[], Iterable[Tensor]],
    rows: list[Span],
    cols: list[Span],
    stats: NormStats,
    step: Callable[[int], None],
    pooled: bool,
) -> None:
    """Fill ``stats`` with the statistics of every instance-norm layer not in it yet, from tiles of the
    image chunks that ``chunks()`` yields: per image (one chunk), or ``pooled`` over every image.

    For each layer, every tile's kept part of that layer's input is summarised (mean, variance, count) and
    the summaries are merged exactly (Chan et al.'s pairwise update, in float64). The kept parts of the
    last row/column extend over the network's internal padding, as they do in the whole-image pass.
    ``step(images)`` is called after each tile pass.
    """
    dims = (0, 2, 3) if pooled else (2, 3)
    for layer in runner.net.norm_layers():
        if layer in stats:
            continue
        count, mean, m2 = 0, None, None
        for x in chunks():
            for row in rows:
                for col in cols:
                    act = runner.norm_input(x[..., row.start : row.end, col.start : col.end], layer, stats)
                    factor = padded_size(row.end - row.start) // act.shape[-2]
                    top, bottom = _kept(row, rows, factor)
                    left, right = _kept(col, cols, factor)
                    kept = act[..., top:bottom, left:right].double()
                    var_t, mean_t = torch.var_mean(kept, dim=dims, correction=0)
                    n = kept.shape[-2] * kept.shape[-1] * (kept.shape[0] if pooled else 1)
                    if mean is None:
                        count, mean, m2 = n, mean_t, var_t * n
                    else:
                        delta = mean_t - mean
                        total = count + n
                        mean = mean + delta * (n / total)
                        m2 = m2 + var_t * n + delta.square() * (count * n / total)
                        count = total
                    step(x.shape[0])
        shape = (1, -1, 1, 1) if pooled else (*mean.shape, 1, 1)
        var = m2 / (count - runner.net.variance_correction)
        stats[layer] = (mean.float().view(shape), var.float().view(shape))


def _kept(span: Span, all_spans: list[Span], factor: int) -> tuple[int, int]:
    """The kept range of a tile in the coordinates of a layer ``factor`` times coarser than the input."""
    end = span.keep_end - span.start
    if span is all_spans[-1]:
        end = padded_size(span.end - span.start)
    return (span.keep_start - span.start) // factor, end // factor


def _run_tiles(
    runner: Runner, x: Tensor, stats: NormStats, rows: list[Span], cols: list[Span], progress: Progress
) -> Tensor:
    """Run each tile with the shared statistics and keep its inner part (RGB, whatever ``x`` carries)."""
    out = torch.empty((x.shape[0], 3, *x.shape[2:]), dtype=torch.float32, device=x.device)
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
