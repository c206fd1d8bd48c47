"""The ``depthstyle`` command line: depth maps, stylisation, training and checkpoint conversion."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")


def default_models_dir() -> Path:
    """Where the CLI looks for model files unless ``--models-dir`` says otherwise.

    Deliberately no environment variable: the Comfy Registry scanner flags packs that read them.
    """
    return Path.home() / ".cache" / "depthstyle" / "models"


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
    estimator = load_depth_model(args.model, model_dirs=[args.models_dir / "depth"], device=args.device)
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


_TRAIN_SETTINGS = (
    ("iterations", int, "training steps (default 40000, as the paper)"),
    ("batch_size", int, "images per step (default 4)"),
    ("image_size", int, "training crop size in pixels (default 256)"),
    ("style_size", int, "the style image's longer side in pixels, 0 = as it is (default 512)"),
    ("lr", float, "Adam learning rate (default 1e-3)"),
    ("seed", int, "random seed (default 0)"),
    ("content_weight", float, "default 1"),
    ("style_weight", float, "default 5"),
    ("depth_weight", float, "default 5; 0 trains the Johnson baseline without a depth network"),
    ("tv_weight", float, "total variation (default 1e-6)"),
    ("checkpoint_every", int, "save a checkpoint every N steps (default 1000)"),
)


def _train_config(args: argparse.Namespace):
    """TrainConfig from the options given; the rest keep TrainConfig's defaults (the paper's)."""
    from .depthstyle_core.models.transformer_net import TransformerNetConfig
    from .trainers import TrainConfig

    given = {name: getattr(args, name) for name, _, _ in _TRAIN_SETTINGS if getattr(args, name) is not None}
    if given.get("style_size") == 0:
        given["style_size"] = None
    return TrainConfig(
        **given,
        weight_mode=args.weight_mode,
        depth_loss=args.depth_loss,
        net_config=TransformerNetConfig(norm=args.norm, upsample=args.upsample, output=args.output_layer),
    )


def _progress_line(step: int, total: int, seconds: float, losses: dict[str, float]) -> str:
    """One console line: a bar, the step, speed, time left and the last logged losses."""
    width = 30
    filled = int(width * step / max(total, 1))
    rate = step / max(seconds, 1e-9)
    minutes_left = (total - step) / rate / 60 if rate > 0 else 0.0
    loss = " ".join(f"{k} {v:.3g}" for k, v in losses.items())
    bar = "#" * filled + "." * (width - filled)
    return f"\r[{bar}] {step}/{total} {rate:.2f} it/s, {minutes_left:.1f} min left {loss}"


def _train_command(args: argparse.Namespace) -> int:
    import time

    from .depthstyle_core.depth import load_depth_model
    from .depthstyle_core.images import load_image
    from .depthstyle_core.models.vgg import load_vgg16
    from .trainers import train_style

    config = _train_config(args)
    vgg = load_vgg16(model_dirs=[args.models_dir / "vgg"])
    depth = None
    if config.depth_weight > 0:
        depth = load_depth_model(args.depth_model, model_dirs=[args.models_dir / "depth"])
        print(f"depth model: {depth.name} (licence {depth.licence})", file=sys.stderr)
    started = time.perf_counter()
    losses: dict[str, float] = {}

    def on_log(record: dict[str, float]) -> None:
        losses.clear()
        losses.update({k: record[k] for k in ("content", "style", "depth") if k in record})

    def on_progress(step: int, total: int, preview: object) -> None:
        line = _progress_line(step, total, time.perf_counter() - started, losses)
        print(line, end="", file=sys.stderr, flush=True)

    try:
        result = train_style(
            load_image(args.style),
            args.content_dir,
            args.output,
            config=config,
            vgg=vgg,
            depth_model=depth,
            device=args.device,
            resume=args.resume,
            on_progress=on_progress,
            on_log=on_log,
        )
    except KeyboardInterrupt:
        print("\ninterrupted: a checkpoint was saved; run again with --resume to continue", file=sys.stderr)
        return 130
    print(file=sys.stderr)
    if result.skipped_files:
        print(f"skipped {len(result.skipped_files)} unreadable content files", file=sys.stderr)
    print(
        f"style model: {result.model_path} ({result.steps_done}/{result.total_steps} steps); "
        f"loss curve: {result.paths.loss_curve}",
        file=sys.stderr,
    )
    return 0


def _add_train_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "train",
        help="train a new style model (depth-aware by default)",
        description="Train a feed-forward style network on a folder of photos, with VGG-16 content and "
        "style losses and a Depth Anything depth loss (Liu et al. 2017). Weights are scale-free: "
        "content 1 / style 5 / depth 5 are the paper's. Ctrl+C saves a checkpoint; --resume continues.",
    )
    parser.add_argument("--style", required=True, help="the style image")
    parser.add_argument("--content-dir", required=True, help="folder of photos (searched recursively)")
    parser.add_argument("-o", "--output", required=True, help="the .safetensors style model to write")
    for name, kind, text in _TRAIN_SETTINGS:
        parser.add_argument("--" + name.replace("_", "-"), type=kind, default=None, help=text)
    parser.add_argument("--weight-mode", choices=("normalized", "raw"), default="normalized")
    parser.add_argument("--depth-loss", choices=("ssi", "l2"), default="ssi")
    parser.add_argument("--depth-model", default="small", help="small (default), base, large or a path")
    parser.add_argument("--norm", choices=("instance", "batch"), default="instance")
    parser.add_argument("--upsample", choices=("nearest", "transposed"), default="nearest")
    parser.add_argument("--output-layer", choices=("linear", "tanh"), default="linear")
    parser.add_argument("--resume", action="store_true", help="continue from the saved state")
    parser.set_defaults(run=_train_command)


COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    _add_train_parser,
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
        help="model folder with depth/, styles/ and vgg/ inside (default: ~/.cache/depthstyle/models)",
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
