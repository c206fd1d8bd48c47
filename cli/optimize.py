"""``depthstyle optimize``: stylise photos with any painting, no training (per-image optimisation)."""

from __future__ import annotations

import argparse
import sys

from .common import EXIT_ERROR, EXIT_INTERRUPTED, InputReader, find_images, output_folder, output_stems
from .depth_maps import depth_of, paired_depth_maps
from .masks import add_mask_arguments, mask_for
from .progress import ConsoleProgress, StopOnSignals


def _config(args: argparse.Namespace):
    from ..trainers import OptimizeConfig

    return OptimizeConfig(
        size=args.size,
        steps=args.steps,
        content_weight=args.content_weight,
        style_weight=args.style_weight,
        depth_weight=args.depth_weight,
        tv_weight=args.tv_weight,
        style_weights=tuple(args.style_weights) if args.style_weights else None,
        style_scale=args.style_scale,
        init=args.init,
        seed=args.seed,
        strength=args.strength,
        preserve_color=args.preserve_color,
        precision=args.precision,
    )


def _optimize_command(args: argparse.Namespace) -> int:
    from ..depthstyle_core.depth import load_depth_model
    from ..depthstyle_core.errors import OptimizationStopped
    from ..depthstyle_core.images import load_image, save_image
    from ..depthstyle_core.models.vgg import load_vgg16
    from ..trainers import optimize_style

    images = find_images(args.images)
    names = output_stems(images)
    out_dir = output_folder(args.output)
    maps = None if args.depth_map is None else paired_depth_maps(args.depth_map, images)
    reader = InputReader("optimize", images, load_image)
    styles = [load_image(path) for path in args.style]
    try:
        config = _config(args)
        config.blend_weights(len(styles))
    except ValueError as exc:
        print(f"depthstyle optimize: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    vgg = load_vgg16(model_dirs=[args.models_dir / "vgg"])
    depth = None
    if config.depth_weight > 0:
        depth = load_depth_model(args.depth_model, model_dirs=[args.models_dir / "depth"])
        print(f"depth model: {depth.name} (licence {depth.licence})", file=sys.stderr)
    for path, photo in reader:
        target = out_dir / f"{names[path]}_optimized.png"
        progress = ConsoleProgress(f"{path.name} ")
        try:
            with StopOnSignals() as stop:
                result = optimize_style(
                    photo,
                    styles,
                    vgg=vgg,
                    depth_model=depth,
                    config=config,
                    device=args.device,
                    mask=mask_for(args, photo),
                    depth_map=None if maps is None else depth_of(maps, [path], photo, "per_image"),
                    on_progress=progress,
                    should_stop=stop,
                )
        except OptimizationStopped as stopped:
            progress.end_line()
            written = save_image(stopped.partial, target)
            print(
                f"interrupted after {stopped.step} of {stopped.total} steps: wrote the picture as it is "
                f"so far to {written}",
                file=sys.stderr,
            )
            return EXIT_INTERRUPTED
        progress.end_line()
        reader.done(path, save_image(result, target))
    return reader.exit_status()


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "optimize",
        help="stylise photos with any painting, no training needed",
        description="Stylise each photo with one or more paintings by optimising the picture itself "
        "(Gatys et al.) with the depth loss, coarse to fine. No trained model is needed: any painting "
        "works. Minutes per picture on a CPU, seconds on a GPU. Ctrl+C writes the picture as it is "
        "so far and stops. Writes <name>_optimized.png.",
    )
    parser.add_argument("images", nargs="+", help="photos: image files or folders")
    parser.add_argument("--style", nargs="+", required=True, help="one or more style images (paintings)")
    parser.add_argument(
        "--style-weights", nargs="+", type=float, help="how much of each style (default: equal shares)"
    )
    parser.add_argument("-o", "--output", required=True, help="output folder")
    parser.add_argument(
        "--size",
        type=int,
        default=512,
        help="long side of the result in pixels, 0 = the photo's (default 512)",
    )
    parser.add_argument("--steps", type=int, default=100, help="steps per scale (default 100)")
    parser.add_argument("--content-weight", type=float, default=1.0, help="default 1")
    parser.add_argument("--style-weight", type=float, default=5.0, help="default 5")
    parser.add_argument(
        "--depth-weight", type=float, default=5.0, help="default 5; 0 runs without a depth network"
    )
    parser.add_argument("--tv-weight", type=float, default=1.0, help="smoothing, 0 = off (default 1)")
    parser.add_argument(
        "--style-scale", type=float, default=1.0, help="style image size relative to the photo (default 1)"
    )
    parser.add_argument("--init", choices=("content", "noise", "blend"), default="content")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--strength", type=float, default=1.0, help="0 keeps the photo, 1 is the full style (default 1)"
    )
    parser.add_argument(
        "--preserve-color", action="store_true", help="keep the photo's colours, take only the style's light"
    )
    parser.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16"),
        default="auto",
        help="auto: bf16 on a GPU, fp32 on a CPU; bf16 also on a CPU with native bf16 (faster, less exact)",
    )
    parser.add_argument(
        "--depth-model",
        default="small",
        help="small (default), base, large or a path (also for --depth-mask)",
    )
    parser.add_argument(
        "--depth-map",
        metavar="FILE|FOLDER",
        help="depth maps made elsewhere (near = white) as what the result's depth must match, instead of "
        "the photo's depth from --depth-model (which still measures the result): a file for every photo, "
        "or a folder with x.png or x_depth.png for each photo x",
    )
    add_mask_arguments(parser)
    parser.set_defaults(run=_optimize_command)
