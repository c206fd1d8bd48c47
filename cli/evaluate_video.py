"""``depthstyle evaluate --video``: how still a stylised clip is, and how well each frame keeps its photo.

The warping error (:mod:`..depthstyle_core.video.warp_error`) is measured between consecutive frames and
between frames 10 apart (when the clip has more than 10), for the stylised clip and for the input clip
itself (the floor), with optical flow on the input frames. The structure report runs on every frame.
Frames come from a video file or from image files in name order; a clip is read once, a few frames at
a time. Writes ``video_pairs.csv`` (one row per frame pair), ``metrics.csv`` (one row per frame) and
``summary.json``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence

from .common import EXIT_OK, expand_images, output_folder
from .report_common import left_out, load_report_models, write_csv, write_json

PAIR_COLUMNS = ("gap", "first", "second", "input_warp_error", "warp_error", "kept")


def frames_of(inputs: Sequence[str]) -> tuple[str, Iterator]:
    """A clip named on the command line: (what it is, its frames ``[1,3,H,W]`` in order)."""
    from ..depthstyle_core.errors import InputImageError
    from ..depthstyle_core.images import load_image
    from ..depthstyle_core.video.files import is_video, read_frames

    if len(inputs) == 1 and is_video(inputs[0]):
        return inputs[0], (frame.picture for frame in read_frames(inputs[0]))
    paths = expand_images(inputs)
    if not paths:
        raise InputImageError(f"no frames found in {', '.join(inputs)}: name image files, folders or a video")
    return f"{len(paths)} images from {', '.join(inputs)}", (load_image(path) for path in paths)


def evaluate_video(args: argparse.Namespace) -> int:
    import torch

    from ..depthstyle_core.errors import InputImageError
    from ..depthstyle_core.report.metrics import METRIC_NAMES, evaluate_structure, mean_metrics
    from ..depthstyle_core.video.warp_error import LONG_GAP, WarpingErrorMeter, warping_summary

    out_dir = output_folder(args.output)
    content_name, contents = frames_of(args.content)
    stylized_name, stylized = frames_of(args.stylized)
    models = load_report_models(args, depth_optional=True)
    meter = WarpingErrorMeter(1, (1, LONG_GAP))
    rows = []
    with torch.inference_mode():
        for index, (content, frame) in enumerate(_lockstep(contents, stylized, content_name, stylized_name)):
            if frame.shape[-2:] != content.shape[-2:]:
                raise InputImageError(
                    f"frame {index + 1}: the stylised frame is {tuple(frame.shape[-2:])}, the input frame "
                    f"{tuple(content.shape[-2:])}; the warping error compares frames of one size"
                )
            meter.add(content, frame)
            (report,) = evaluate_structure(
                content,
                frame,
                models.depth,
                style=models.style,
                vgg=models.vgg,
                resolution=args.resolution,
                edge_tolerance=args.edge_tolerance,
            )
            rows.append({"frame": index + 1, **report.metrics.as_dict()})
            print(f"\r[{index + 1}] frames measured", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    if len(rows) < 2:
        raise InputImageError(f"the warping error needs at least 2 frames, got {len(rows)}")
    pairs = [
        {
            "gap": gap,
            "first": pair.first + 1,
            "second": pair.second + 1,
            "input_warp_error": pair.errors[0],
            "warp_error": pair.errors[1],
            "kept": pair.kept,
        }
        for gap, measured in meter.pairs.items()
        for pair in measured
    ]
    warping = warping_summary(meter)
    long_left_out = (
        [] if "warp_error_long" in warping else [f"warp_error_long (needs more than {LONG_GAP} frames)"]
    )
    summary = {
        "settings": {**models.settings, "flow": warping.pop("flow"), "long_gap": LONG_GAP},
        "content": content_name,
        "stylized": stylized_name,
        "frames": len(rows),
        **warping,
        "mean": mean_metrics(rows),
        "left_out": left_out(models) + long_left_out,
    }
    write_csv(out_dir / "video_pairs.csv", pairs, PAIR_COLUMNS)
    write_csv(out_dir / "metrics.csv", rows, ("frame", *METRIC_NAMES))
    write_json(out_dir / "summary.json", summary)
    ratio = summary["warp_error_x_input"]
    floor = f" ({ratio:.2f}x the input's {summary['input_warp_error']:.6f})" if ratio is not None else ""
    print(
        f"{len(rows)} frames: warping error {summary['warp_error']:.6f}{floor}, flow {meter.flow.name}; "
        f"{out_dir / 'summary.json'}",
        file=sys.stderr,
    )
    return EXIT_OK


def _lockstep(contents: Iterator, stylized: Iterator, content_name: str, stylized_name: str) -> Iterator:
    """Pairs of frames in order; clips of different lengths are an error once the shorter one ends."""
    from ..depthstyle_core.errors import InputImageError

    count = 0
    sentinel = object()
    while True:
        a, b = next(contents, sentinel), next(stylized, sentinel)
        if a is sentinel and b is sentinel:
            return
        if a is sentinel or b is sentinel:
            shorter = content_name if a is sentinel else stylized_name
            raise InputImageError(f"the clips have different lengths: {shorter} ends after {count} frames")
        count += 1
        yield a, b
