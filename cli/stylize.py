"""``depthstyle stylize``: apply a trained style model to images."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .common import expand_images


def _stylize_command(args: argparse.Namespace) -> int:
    import torch

    from ..depthstyle_core.images import load_image, save_image
    from ..depthstyle_core.style_model import load_style_model
    from ..depthstyle_core.stylize import stylize

    images = expand_images(args.images)
    if not images:
        raise SystemExit("depthstyle stylize: no images found in " + ", ".join(args.images))
    net, _ = load_style_model(args.model, model_dirs=[args.models_dir / "styles"])
    net.to(args.device)
    out_dir = Path(args.output)
    with torch.inference_mode():
        for index, path in enumerate(images, start=1):
            styled = stylize(
                net,
                load_image(path),
                strength=args.strength,
                preserve_color=args.preserve_color,
                tile_size=args.tile,
                precision=args.precision,
            )
            written = save_image(styled, out_dir / f"{path.stem}_styled.png")
            print(f"[{index}/{len(images)}] {path} -> {written}", file=sys.stderr)
    return 0


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "stylize",
        help="stylise images with a trained style model",
        description="Stylise each image with a style model (.safetensors) at its full resolution.",
    )
    parser.add_argument("images", nargs="+", help="image files or folders")
    parser.add_argument(
        "--model", required=True, help="style model: a .safetensors path or a file in styles/"
    )
    parser.add_argument("-o", "--output", required=True, help="output folder")
    parser.add_argument(
        "--strength", type=float, default=1.0, help="0 keeps the photo, 1 is the full style (default 1)"
    )
    parser.add_argument(
        "--preserve-color", action="store_true", help="keep the photo's colours, take only the style's light"
    )
    parser.add_argument(
        "--tile", type=int, default=0, help="tile size in pixels for huge images (default 0: whole image)"
    )
    parser.add_argument("--precision", choices=("fp32", "fp16", "bf16"), default="fp32", help="CUDA only")
    parser.set_defaults(run=_stylize_command)
