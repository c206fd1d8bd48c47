"""``depthstyle stylize CLIP.mp4``: video files in, video files out (same frames, size, rate and sound).

Each clip is read twice (a sample for its one look, then all of it a few frames at a time), so memory
does not grow with its length. Ctrl+C finishes the file after the frames done so far: it plays.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .common import EXIT_INTERRUPTED, EXIT_OK, output_folder
from .progress import ConsoleProgress, StopOnSignals

if TYPE_CHECKING:
    import torch

    from ..depthstyle_core.video.stylize_file import Painter

KEPT_SUFFIXES = (".mp4", ".mov", ".mkv", ".m4v")
"""Containers an output keeps from its source; any other becomes .mp4."""

PainterFactory = Callable[["torch.Tensor"], "Painter"]
"""``make(sample)``: the painter for one clip, its look measured on ``sample`` (frames spread over it)."""


def add_video_arguments(parser: argparse.ArgumentParser) -> None:
    """Options for video files."""
    group = parser.add_argument_group("video files")
    group.add_argument(
        "--full-chroma",
        action="store_true",
        help="write colour at full resolution (H.264 4:4:4): fine colour texture stays stiller, but "
        "browsers and QuickTime cannot play such files (default: 4:2:0, plays everywhere)",
    )


def split_videos(paths: Sequence[Path]) -> tuple[list[Path], list[Path]]:
    """The inputs that are video files, and the rest (still images)."""
    from ..depthstyle_core.video.files import is_video

    videos = [path for path in paths if is_video(path)]
    return videos, [path for path in paths if not is_video(path)]


def resolve_frames(args: argparse.Namespace, videos: Sequence[Path]) -> str:
    """``--frames``, defaulting to ``flow`` for video files and ``independent`` for still images."""
    if args.frames is None:
        args.frames = "flow" if videos else "independent"
    return args.frames


def video_outputs(output: str, videos: Sequence[Path], stills: Sequence[Path]) -> dict[Path, Path]:
    """Where each clip's result goes: ``-o result.mp4`` names the file (one clip, nothing else); ``-o
    FOLDER`` gets ``CLIP_styled.mp4`` for each."""
    from ..depthstyle_core.errors import OutputError
    from ..depthstyle_core.video.files import is_video

    target = Path(output)
    if is_video(target) and not target.is_dir():
        if len(videos) != 1 or stills:
            raise OutputError(
                f"-o {output} names one video file, but {len(videos)} clips and {len(stills)} images were "
                "given: name a folder instead"
            )
        output_folder(target.parent if str(target.parent) else ".")
        return {videos[0]: target}
    folder = output_folder(target)
    outputs: dict[Path, Path] = {}
    for video in videos:
        suffix = video.suffix.lower() if video.suffix.lower() in KEPT_SUFFIXES else ".mp4"
        outputs[video] = folder / f"{video.stem}_styled{suffix}"
    if len(set(outputs.values())) != len(outputs):
        raise OutputError("two clips have the same name: stylise them into different folders")
    return outputs


def stylize_videos(args: argparse.Namespace, outputs: dict[Path, Path], make_painter: PainterFactory) -> int:
    """Stylise each clip into its output; :data:`EXIT_INTERRUPTED` when Ctrl+C stopped one."""
    from ..depthstyle_core.errors import OperationCancelled
    from ..depthstyle_core.video.files import probe
    from ..depthstyle_core.video.hold import TemporalHold
    from ..depthstyle_core.video.stylize_file import sample_frames, stylize_video_file

    for source, destination in outputs.items():
        info = probe(source)
        painter = make_painter(sample_frames(source, info))
        hold = TemporalHold() if args.frames == "flow" else None
        progress = ConsoleProgress(label=f"{source.name} ", unit="frames")
        with StopOnSignals() as stop:
            try:
                result = stylize_video_file(
                    source,
                    destination,
                    painter,
                    hold=hold,
                    info=info,
                    full_chroma=args.full_chroma,
                    on_progress=progress,
                    should_stop=stop,
                )
            except OperationCancelled as exc:
                progress.end_line()
                print(f"depthstyle stylize: {exc}", file=sys.stderr)
                return EXIT_INTERRUPTED
        progress.end_line()
        cuts = f", scene cuts at frames {', '.join(str(c + 1) for c in result.cuts)}" if result.cuts else ""
        print(
            f"{source} -> {destination} ({result.written} frames, {info.width}x{info.height} at "
            f"{float(info.rate):g} fps, frames {args.frames}{cuts})",
            file=sys.stderr,
        )
    return EXIT_OK
