"""``depthstyle stylize --style PAINTING``: any painting in one pass of the built-in network.

Works on a fresh install with no network: the network ships in the package. Depth (``--depth-preserve``,
on by default) needs Depth Anything; when it cannot be had, one line says so and how to get it, and the
images are stylised without depth.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..depthstyle_core.any_style import DEFAULT_DEPTH_PRESERVE, DEFAULT_STYLE_SIZE
from .common import (
    EXIT_ERROR,
    EXIT_OK,
    InputReader,
    find_images,
    fraction,
    output_folder,
    output_stems,
    same_size_frames,
)
from .depth_maps import depth_of, paired_depth_maps
from .masks import depth_model_for, mask_for, pixels
from .stylize_video import resolve_frames, split_videos, stylize_videos, video_outputs

if TYPE_CHECKING:
    import torch

    from ..depthstyle_core.any_style.stylize import ClipLook
    from ..depthstyle_core.depth import DepthEstimator
    from ..depthstyle_core.models.microast import StyleSignals
    from ..depthstyle_core.video.stylize_file import Painter

ANY_STYLE_ONLY = {
    "style_weights": "--style-weights",
    "style_size": "--style-size",
    "depth_preserve": "--depth-preserve",
    "any_model": "--any-model",
    "depth_map": "--depth-map",
    "runtime": "--runtime",
}


def add_any_style_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that only ``--style`` uses (their defaults are None, so a stray one can be named)."""
    group = parser.add_argument_group("any painting (--style)")
    group.add_argument(
        "--style-weights",
        type=float,
        nargs="+",
        metavar="W",
        help="how much of each painting, one weight per --style (default: equal shares)",
    )
    group.add_argument(
        "--style-size",
        type=pixels,
        metavar="PX",
        help="the painting's long side in pixels before it is read; larger = finer brushwork "
        f"(default {DEFAULT_STYLE_SIZE}; 0 keeps its size)",
    )
    group.add_argument(
        "--depth-preserve",
        type=fraction,
        metavar="P",
        help="how much of the photo the nearest things keep, from 0 (none, no depth model needed) to 1; "
        f"far things always take the full style (default {DEFAULT_DEPTH_PRESERVE})",
    )
    group.add_argument(
        "--depth-map",
        metavar="FILE|FOLDER",
        help="depth maps made elsewhere (near = white) instead of a depth model, for --depth-preserve and "
        "--depth-mask: a file for every photo, or a folder with x.png or x_depth.png for each photo x",
    )
    group.add_argument(
        "--runtime",
        choices=("auto", "torch", "openvino"),
        help="what runs the network on the CPU: auto (default: OpenVINO when it is installed, with "
        'pip install "depthstyle[cpu]"; the same pictures, faster), torch or openvino',
    )
    group.add_argument(
        "--any-model",
        metavar="FILE",
        help="an any-painting model file of the same architecture (e.g. a fine-tuned one) instead of the "
        "built-in weights: a path or a file in any_style/",
    )


def any_style_runtime(args: argparse.Namespace, device: str) -> str | None:
    """The runtime of the any-painting network on ``device`` (settled in ``args.runtime``), or None when
    this run paints with a trained style."""
    from ..depthstyle_core.runtimes import chosen_runtime

    if not args.style:
        return None
    args.runtime = chosen_runtime(args.runtime or "auto", device)
    return args.runtime


def unused_any_style_options(args: argparse.Namespace) -> str | None:
    """The ``--style``-only options that were given, or None."""
    given = [flag for name, flag in ANY_STYLE_ONLY.items() if getattr(args, name) is not None]
    return ", ".join(given) or None


def stylize_any_command(args: argparse.Namespace) -> int:
    import torch

    from ..depthstyle_core.any_style.model_file import load_any_style_model
    from ..depthstyle_core.any_style.signals import style_signals
    from ..depthstyle_core.any_style.stylize import runnable
    from ..depthstyle_core.images import load_image

    if args.style_weights is not None and len(args.style_weights) != len(args.style):
        print(
            f"depthstyle stylize: error: {len(args.style_weights)} --style-weights for {len(args.style)} "
            "paintings: give one weight per painting",
            file=sys.stderr,
        )
        return EXIT_ERROR
    videos, stills = split_videos(find_images(args.images))
    resolve_frames(args, videos)
    if videos and args.depth_map is not None:
        print(
            "depthstyle stylize: error: --depth-map pairs depth images with image files; for a video file "
            "leave it out (the depth model sees every frame)",
            file=sys.stderr,
        )
        return EXIT_ERROR
    outputs = video_outputs(args.output, videos, stills) if videos else {}
    out_dir = output_folder(args.output) if stills else None
    paintings = [load_image(path) for path in args.style]
    maps = None if args.depth_map is None else paired_depth_maps(args.depth_map, stills)
    model = load_any_style_model(args.any_model, args.device, model_dirs=[args.models_dir / "any_style"])
    model = runnable(model, torch.device(args.device))  # once here, not a copy for every photo
    estimator = None if maps is not None else _depth_estimator(args)
    size = DEFAULT_STYLE_SIZE if args.style_size is None else args.style_size
    with torch.inference_mode():
        style = style_signals(model, paintings, style_weights=args.style_weights, style_size=size)
        if videos:
            status = stylize_videos(
                args, outputs, lambda sample: _clip_painter(args, model, style, estimator, sample)
            )
            if status != EXIT_OK or not stills:
                return status
        return _stylize_stills(args, model, style, stills, out_dir, Depth(maps, estimator))


class Depth:
    """Depth for a list of photos: from the maps given with ``--depth-map``, else from the depth model,
    else none."""

    def __init__(self, maps: object, estimator: DepthEstimator | None) -> None:
        self.maps, self.estimator = maps, estimator

    def __call__(self, paths: list[Path], frames: torch.Tensor, normalization: str) -> torch.Tensor | None:
        from ..depthstyle_core.depth import estimate_depth

        if self.maps is not None:
            return depth_of(self.maps, paths, frames, normalization)
        if self.estimator is None:
            return None
        return estimate_depth(self.estimator, frames, normalization=normalization)


def _stylize_stills(
    args: argparse.Namespace,
    model: torch.nn.Module,
    style: StyleSignals,
    images: list[Path],
    out_dir: Path,
    depth: Depth,
) -> int:
    """Photos, each on its own or (``--frames shared``/``flow``) as the frames of one clip."""
    from ..depthstyle_core.images import load_image, save_image

    names = output_stems(images)
    reader = InputReader("stylize", images, load_image)
    if args.frames in ("shared", "flow"):
        paths, frames = same_size_frames(list(reader), args.frames)
        maps = depth(paths, frames, "per_batch")
        styled = _stylize(args, model, frames, style, maps, "per_batch", args.frames)
        for path, image in zip(paths, styled, strict=True):
            reader.done(path, save_image(image, out_dir / f"{names[path]}_styled.png"))
    else:
        for path, image in reader:
            maps = depth([path], image, "per_image")
            styled = _stylize(args, model, image, style, maps, "per_image", "independent")
            reader.done(path, save_image(styled, out_dir / f"{names[path]}_styled.png"))
    return reader.exit_status()


def _clip_painter(
    args: argparse.Namespace,
    model: torch.nn.Module,
    style: StyleSignals,
    estimator: DepthEstimator | None,
    sample: torch.Tensor,
) -> Painter:
    """Paints a clip's frames, with the look measured on ``sample`` when they share one. Depth is
    normalised over the clip, with the range the depth model finds on ``sample``; each part's depth
    maps go along for the flow's occlusion test."""
    from ..depthstyle_core.any_style.stylize import clip_look
    from ..depthstyle_core.depth import estimate_depth

    depth_range = sample_depth = None
    if estimator is not None:
        raw = estimate_depth(estimator, sample, normalization="raw")
        depth_range = (float(raw.min()), max(float(raw.max() - raw.min()), 1e-8))
        sample_depth = (raw - depth_range[0]) / depth_range[1]

    def depth(frames: torch.Tensor) -> torch.Tensor | None:
        if depth_range is None:
            return None
        low, span = depth_range
        return ((estimate_depth(estimator, frames, normalization="raw") - low) / span).clamp_(0, 1)

    pooled = args.frames in ("shared", "flow")
    look = None
    if pooled:
        look = clip_look(
            model,
            sample,
            style,
            strength=args.strength,
            mask=mask_for(args, sample, normalization="per_batch", depth=sample_depth),
            depth=sample_depth,
            depth_preserve=_depth_preserve(args) if sample_depth is not None else 0.0,
            style_size=DEFAULT_STYLE_SIZE if args.style_size is None else args.style_size,
            scale=args.scale,
            tile=args.tile,
            precision=args.precision,
            device=args.device,
            runtime=args.runtime,
        )

    def paint(frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        maps = depth(frames)
        mode = "shared" if pooled else "independent"
        return _stylize(args, model, frames, style, maps, "per_batch", mode, look), maps

    return paint


def _stylize(
    args: argparse.Namespace,
    model: torch.nn.Module,
    images: torch.Tensor,
    style: StyleSignals,
    depth: torch.Tensor | None,
    normalization: str,
    frames: str,
    look: ClipLook | None = None,
) -> torch.Tensor:
    from ..depthstyle_core.any_style.stylize import stylize_any

    return stylize_any(
        model,
        images,
        style,
        strength=args.strength,
        mask=mask_for(args, images, normalization=normalization, depth=depth),
        depth=depth,
        depth_preserve=_depth_preserve(args) if depth is not None else 0.0,
        style_size=DEFAULT_STYLE_SIZE if args.style_size is None else args.style_size,
        preserve_color=args.preserve_color,
        frames=frames,
        scale=args.scale,
        tile=args.tile,
        precision=args.precision,
        device=args.device,
        look=look,
        runtime=args.runtime,
    )


def _depth_preserve(args: argparse.Namespace) -> float:
    return DEFAULT_DEPTH_PRESERVE if args.depth_preserve is None else args.depth_preserve


def _depth_estimator(args: argparse.Namespace) -> DepthEstimator | None:
    """The depth model when depth is used; None, said in one line with the fix, when it cannot be had
    (only ``--depth-mask`` makes that an error)."""
    from ..depthstyle_core.errors import ModelNotAvailableError

    if args.depth_mask is None and _depth_preserve(args) == 0:
        return None
    try:
        return depth_model_for(args)
    except ModelNotAvailableError as exc:
        if args.depth_mask is not None:
            raise
        print(
            f"depthstyle stylize: no depth model, so stylising without depth (--depth-preserve 0 skips "
            f"this): {' '.join(str(exc).split())}",
            file=sys.stderr,
        )
        return None
