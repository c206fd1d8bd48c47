"""``depthstyle depth``: depth maps (near = white) with Depth Anything V2."""

from __future__ import annotations

import argparse
import sys

from .common import InputReader, find_images, output_folder, output_stems


def _depth_command(args: argparse.Namespace) -> int:
    import torch

    from ..depthstyle_core.depth import colorize_depth, estimate_depth, load_depth_model
    from ..depthstyle_core.images import DEPTH_FORMATS, load_image, save_depth, save_image

    images = find_images(args.images)
    names = output_stems(images)
    out_dir = output_folder(args.output)
    reader = InputReader("depth", images, load_image)
    estimator = load_depth_model(args.model, model_dirs=[args.models_dir / "depth"], device=args.device)
    print(f"depth model: {estimator.name} (licence {estimator.licence})", file=sys.stderr)
    suffix = DEPTH_FORMATS[args.format]
    with torch.inference_mode():
        for path, image in reader:
            depth = estimate_depth(estimator, image, resolution=args.resolution, precision=args.precision)
            written = [save_depth(depth, out_dir / f"{names[path]}_depth{suffix}", args.format)]
            if args.colormap:
                written.append(save_image(colorize_depth(depth), out_dir / f"{names[path]}_depth_color.png"))
            reader.done(path, *written)
    return reader.exit_status()


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "depth",
        help="estimate depth maps (near = white) with Depth Anything V2",
        description="Write a greyscale depth map (near = white) for each image, "
        "and optionally a colour preview.",
    )
    parser.add_argument("images", nargs="+", help="image files or folders")
    parser.add_argument("-o", "--output", required=True, help="output folder")
    parser.add_argument(
        "--model",
        default="small",
        help="small (Apache-2.0, default), base or large (both CC-BY-NC-4.0, non-commercial), "
        "or a .safetensors path",
    )
    parser.add_argument(
        "--resolution", type=int, default=518, help="shorter side the network sees (default 518)"
    )
    parser.add_argument("--precision", choices=("fp32", "fp16", "bf16"), default="fp32")
    parser.add_argument(
        "--format",
        choices=("png", "png16", "npy"),
        default="png",
        help="png: 8-bit greyscale (default); png16: 16-bit greyscale PNG (0..65535), for 3D, parallax or "
        "relighting; npy: float32 NumPy array [H,W], not quantised. All 0..1 per image, near = 1",
    )
    parser.add_argument("--colormap", action="store_true", help="also write a colourised 8-bit preview")
    parser.set_defaults(run=_depth_command)
