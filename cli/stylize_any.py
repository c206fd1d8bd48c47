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
    InputReader,
    find_images,
    fraction,
    output_folder,
    output_stems,
    same_size_frames,
)
from .depth_maps import depth_of, paired_depth_maps
from .masks import depth_model_for, mask_for, pixels

if TYPE_CHECKING:
    import torch

    from ..depthstyle_core.depth import DepthEstimator

ANY_STYLE_ONLY = {
    "style_weights": "--style-weights",
    "style_size": "--style-size",
    "depth_preserve": "--depth-preserve",
    "any_model": "--any-model",
    "depth_map": "--depth-map",
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
        "--any-model",
        metavar="FILE",
        help="an any-painting model file of the same architecture (e.g. a fine-tuned one) instead of the "
        "built-in weights: a path or a file in any_style/",
    )


def unused_any_style_options(args: argparse.Namespace) -> str | None:
    """The ``--style``-only options that were given, or None."""
    given = [flag for name, flag in ANY_STYLE_ONLY.items() if getattr(args, name) is not None]
    return ", ".join(given) or None


def stylize_any_command(args: argparse.Namespace) -> int:
    import torch

    from ..depthstyle_core.any_style.model_file import load_any_style_model
    from ..depthstyle_core.depth import estimate_depth
    from ..depthstyle_core.images import load_image, save_image

    if args.scale != 1.0:
        print("depthstyle stylize: error: --scale works with --model only", file=sys.stderr)
        return EXIT_ERROR
    if args.style_weights is not None and len(args.style_weights) != len(args.style):
        print(
            f"depthstyle stylize: error: {len(args.style_weights)} --style-weights for {len(args.style)} "
            "paintings: give one weight per painting",
            file=sys.stderr,
        )
        return EXIT_ERROR
    images = find_images(args.images)
    names = output_stems(images)
    out_dir = output_folder(args.output)
    reader = InputReader("stylize", images, load_image)
    paintings = [load_image(path) for path in args.style]
    maps = None if args.depth_map is None else paired_depth_maps(args.depth_map, images)
    model = load_any_style_model(args.any_model, args.device, model_dirs=[args.models_dir / "any_style"])
    estimator = None if maps is not None else _depth_estimator(args)

    def depth(paths: list[Path], frames: torch.Tensor, normalization: str) -> torch.Tensor | None:
        if maps is not None:
            return depth_of(maps, paths, frames, normalization)
        return None if estimator is None else estimate_depth(estimator, frames, normalization=normalization)

    with torch.inference_mode():
        if args.frames == "shared":
            paths, frames = same_size_frames(list(reader))
            styled = _stylize(args, model, frames, paintings, depth(paths, frames, "per_batch"), "per_batch")
            for path, image in zip(paths, styled, strict=True):
                reader.done(path, save_image(image, out_dir / f"{names[path]}_styled.png"))
        else:
            for path, image in reader:
                styled = _stylize(
                    args, model, image, paintings, depth([path], image, "per_image"), "per_image"
                )
                reader.done(path, save_image(styled, out_dir / f"{names[path]}_styled.png"))
    return reader.exit_status()


def _stylize(
    args: argparse.Namespace,
    model: torch.nn.Module,
    images: torch.Tensor,
    paintings: list[torch.Tensor],
    depth: torch.Tensor | None,
    normalization: str,
) -> torch.Tensor:
    from ..depthstyle_core.any_style.stylize import stylize_any

    return stylize_any(
        model,
        images,
        paintings,
        strength=args.strength,
        mask=mask_for(args, images, normalization=normalization, depth=depth),
        depth=depth,
        depth_preserve=_depth_preserve(args) if depth is not None else 0.0,
        style_size=DEFAULT_STYLE_SIZE if args.style_size is None else args.style_size,
        style_weights=args.style_weights,
        preserve_color=args.preserve_color,
        frames=args.frames,
        tile=args.tile,
        precision=args.precision,
        device=args.device,
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
