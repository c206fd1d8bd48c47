"""The ``depthstyle`` command line: depth maps, stylisation, training and checkpoint conversion."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
MODELS_DIR_ENV = "DEPTHSTYLE_MODELS_DIR"


def default_models_dir() -> Path:
    """Where the CLI looks for model files: ``$DEPTHSTYLE_MODELS_DIR`` or ``~/.cache/depthstyle/models``."""
    configured = os.environ.get(MODELS_DIR_ENV)
    return Path(configured) if configured else Path.home() / ".cache" / "depthstyle" / "models"


def expand_images(inputs: Sequence[str]) -> list[Path]:
    """Image files named on the command line; folders contribute their images (recursively, sorted)."""
    found: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES))
        else:
            found.append(path)
    return found


def _depth_command(args: argparse.Namespace) -> int:
    import torch

    from .depthstyle_core.depth import colorize_depth, depth_to_rgb, estimate_depth, load_depth_model
    from .depthstyle_core.images import load_image, save_image

    images = expand_images(args.images)
    if not images:
        raise SystemExit("depthstyle depth: no images found in " + ", ".join(args.images))
    out_dir = Path(args.output)
    estimator = load_depth_model(
        args.model, model_dirs=[args.models_dir / "depth"], device=args.device
    )
    print(f"depth model: {estimator.name} (licence {estimator.licence})", file=sys.stderr)
    with torch.inference_mode():
        for index, path in enumerate(images, start=1):
            depth = estimate_depth(
                estimator, load_image(path), resolution=args.resolution, precision=args.precision
            )
            written = [save_image(depth_to_rgb(depth), out_dir / f"{path.stem}_depth.png")]
            if args.colormap:
                written.append(save_image(colorize_depth(depth), out_dir / f"{path.stem}_depth_color.png"))
            print(f"[{index}/{len(images)}] {path} -> {', '.join(map(str, written))}", file=sys.stderr)
    return 0


def _add_depth_parser(commands: argparse._SubParsersAction) -> None:
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
    parser.add_argument("--colormap", action="store_true", help="also write a colourised preview")
    parser.set_defaults(run=_depth_command)


def _stylize_command(args: argparse.Namespace) -> int:
    import torch

    from .depthstyle_core.images import load_image, save_image
    from .depthstyle_core.style_model import load_style_model
    from .depthstyle_core.stylize import stylize

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


def _add_stylize_parser(commands: argparse._SubParsersAction) -> None:
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


def _convert_command(args: argparse.Namespace) -> int:
    from .depthstyle_core.style_model import convert_pickle_to_safetensors

    written = convert_pickle_to_safetensors(args.model, args.output)
    print(f"{args.model} -> {written}", file=sys.stderr)
    return 0


def _add_convert_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "convert",
        help="convert a pickled fast_neural_style model (.pth) to safetensors",
        description="Convert a community fast_neural_style model (.pth/.model, a plain state dict) into "
        "a DepthStyle .safetensors style model. Only plain tensors are unpickled (weights_only=True).",
    )
    parser.add_argument("model", help="the .pth file")
    parser.add_argument("-o", "--output", required=True, help="the .safetensors file to write")
    parser.set_defaults(run=_convert_command)


COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    _add_depth_parser,
    _add_stylize_parser,
    _add_convert_parser,
]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command registered."""
    parser = argparse.ArgumentParser(
        prog="depthstyle",
        description="Depth-aware neural style transfer: depth maps, stylisation and style training.",
    )
    parser.add_argument(
        "--models-dir",
        type=Path,
        default=default_models_dir(),
        help=f"model folder with depth/, styles/ and vgg/ inside (default: ${MODELS_DIR_ENV} "
        "or ~/.cache/depthstyle/models)",
    )
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default cpu)")
    commands = parser.add_subparsers(title="commands", dest="command", required=True, metavar="COMMAND")
    for add in COMMANDS:
        add(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``depthstyle`` console script."""
    from .depthstyle_core.errors import DepthStyleError

    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except DepthStyleError as exc:
        print(f"depthstyle {args.command}: error: {exc}", file=sys.stderr)
        return 2
