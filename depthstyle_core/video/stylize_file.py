"""A video file stylised into another, in two passes, with memory that does not grow with the clip.

The first pass reads frames spread over the clip: the stylisation measures on them the one look every
frame gets (what ``frames="shared"`` pools over a batch). The second pass reads the clip a few frames at
a time, paints them with that look, holds them still along the flow (:class:`.hold.TemporalHold`, which
keeps only the last frame and two keyframes) and writes them at once. A stop request or an error ends
the file cleanly after the last frame written, so it plays.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from ..errors import InputImageError, OperationCancelled
from .files import VideoFrame, VideoInfo, VideoWriter, probe, read_frames
from .hold import TemporalHold

SAMPLE_FRAMES = 16
SAMPLE_BYTES = 512 * 2**20
"""At most this many frames, and this much memory, for the first pass's sample."""
CHUNK_FRAMES = 4

Painter = Callable[[Tensor], tuple[Tensor, Tensor | None]]
"""``paint(frames)``: ``[N,3,H,W]`` 0..1 -> (their stylised pictures ``[N,3,H,W]``, their depth maps
``[N,1,H,W]`` near = 1 or None), every call with the same look."""
FrameProgress = Callable[[int, int], None]


@dataclass(frozen=True)
class VideoResult:
    """What was written: the file, how many frames of how many, and the scene cuts found."""

    path: Path
    written: int
    total: int
    cuts: tuple[int, ...]

    @property
    def complete(self) -> bool:
        return self.written == self.total


def sample_frames(path: str | Path, info: VideoInfo | None = None, count: int = SAMPLE_FRAMES) -> Tensor:
    """Up to ``count`` frames spread evenly over the clip (fewer for very large frames), ``[N,3,H,W]``."""
    info = info or probe(path)
    frame_bytes = 3 * 4 * info.width * info.height
    count = max(1, min(count, info.frames, SAMPLE_BYTES // frame_bytes))
    wanted = {round(i * (info.frames - 1) / max(count - 1, 1)) for i in range(count)}
    picked = [frame.picture for frame in read_frames(path) if frame.index in wanted]
    if not picked:
        raise InputImageError(f"{path} has no frame that can be decoded")
    return torch.cat(picked)


def stylize_video_file(
    source: str | Path,
    destination: str | Path,
    paint: Painter,
    *,
    hold: TemporalHold | None = None,
    info: VideoInfo | None = None,
    chunk: int = CHUNK_FRAMES,
    full_chroma: bool = False,
    on_progress: FrameProgress | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> VideoResult:
    """Paint every frame of ``source`` with ``paint`` (held still by ``hold`` when given) into
    ``destination``, with the source's frame count, size, timestamps and sound (``full_chroma``: colour
    at full resolution, see :class:`.files.VideoWriter`).

    ``on_progress(frames_written, total)`` after each part; ``should_stop()`` True ends the file after
    the frames written so far and raises :class:`~..errors.OperationCancelled` (the file plays).
    """
    source, destination = Path(source), Path(destination)
    info = info or probe(source)
    if destination.resolve() == source.resolve():
        raise InputImageError(f"the output {destination} would overwrite the video being read")
    with VideoWriter(destination, info, audio_from=source, full_chroma=full_chroma) as writer:
        pending: list[VideoFrame] = []
        for frame in read_frames(source):
            pending.append(frame)
            if len(pending) == chunk:
                _paint_part(pending, paint, hold, writer)
                pending = []
                _report(writer, info, on_progress, should_stop)
        if pending:
            _paint_part(pending, paint, hold, writer)
            _report(writer, info, on_progress, None)
    cuts = tuple(hold.cuts) if hold is not None else ()
    return VideoResult(destination, writer.written, max(info.frames, writer.written), cuts)


def _paint_part(
    frames: list[VideoFrame], paint: Painter, hold: TemporalHold | None, writer: VideoWriter
) -> None:
    pictures = torch.cat([frame.picture for frame in frames])
    styled, depth = paint(pictures)
    for index, frame in enumerate(frames):
        out = styled[index : index + 1]
        if hold is not None:
            frame_depth = None if depth is None else depth[index : index + 1]
            out = hold(pictures[index : index + 1], out, frame_depth)
        writer.write(out, frame.pts)


def _report(
    writer: VideoWriter,
    info: VideoInfo,
    on_progress: FrameProgress | None,
    should_stop: Callable[[], bool] | None,
) -> None:
    if on_progress is not None:
        on_progress(writer.written, max(info.frames, writer.written))
    if should_stop is not None and should_stop():
        raise OperationCancelled(
            f"stopped after {writer.written} of {info.frames} frames; {writer.path} holds them and plays"
        )
