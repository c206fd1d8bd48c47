"""``depthstyle stylize``: paint images or the frames of a video with any painting (``--style``, the
built-in network, see :mod:`.stylize_any`) or with a trained style model (``--model``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

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
from .masks import add_mask_arguments, mask_for
from .stylize_any import (
    add_any_style_arguments,
    any_style_runtime,
    stylize_any_command,
    unused_any_style_options,
)
from .stylize_video import add_video_arguments, resolve_frames, split_videos, stylize_videos, video_outputs

if TYPE_CHECKING:
    import torch

    from ..depthstyle_core.models.transformer_net import TransformerNet
    from ..depthstyle_core.video.stylize_file import Painter

POOLED = ("shared", "flow")


def _stylize_command(args: argparse.Namespace) -> int:
    if args.style:
        return stylize_any_command(args)
    unused = unused_any_style_options(args)
    if unused:
        print(f"depthstyle stylize: error: {unused} work with --style only", file=sys.stderr)
        return EXIT_ERROR
    return _stylize_trained(args)


def _stylize_trained(args: argparse.Namespace) -> int:
    import torch

    from ..depthstyle_core.style_model import load_style_model

    videos, stills = split_videos(find_images(args.images))
    resolve_frames(args, videos)
    outputs = video_outputs(args.output, videos, stills) if videos else {}
    out_dir = output_folder(args.output) if stills else None
    net, _ = load_style_model(args.model, model_dirs=[args.models_dir / "styles"])
    net.to(args.device)
    settings = {
        "strength": args.strength,
        "preserve_color": args.preserve_color,
        "scale": args.scale,
        "tile_size": args.tile,
        "precision": args.precision,
    }
    with torch.inference_mode():
        if videos:
            status = stylize_videos(args, outputs, lambda sample: _clip_painter(args, net, sample, settings))
            if status != EXIT_OK or not stills:
                return status
        return _stylize_stills(args, net, stills, out_dir, settings)


def _stylize_stills(
    args: argparse.Namespace,
    net: TransformerNet,
    images: list[Path],
    out_dir: Path,
    settings: dict[str, object],
) -> int:
    """Images, each on its own or (``--frames shared``/``flow``) as the frames of one clip."""
    from ..depthstyle_core.images import load_image, save_image
    from ..depthstyle_core.stylize import stylize

    names = output_stems(images)
    reader = InputReader("stylize", images, load_image)
    if args.frames in POOLED:
        paths, frames = same_size_frames(list(reader), args.frames)
        mask = mask_for(args, frames, normalization="per_batch")
        styled = stylize(net, frames, mask=mask, frames=args.frames, **settings)
        for path, image in zip(paths, styled, strict=True):
            reader.done(path, save_image(image, out_dir / f"{names[path]}_styled.png"))
    else:
        for path, image in reader:
            styled = stylize(net, image, mask=mask_for(args, image), frames=args.frames, **settings)
            reader.done(path, save_image(styled, out_dir / f"{names[path]}_styled.png"))
    return reader.exit_status()


def _clip_painter(
    args: argparse.Namespace, net: TransformerNet, sample: torch.Tensor, settings: dict
) -> Painter:
    """Paints a clip's frames with the trained style, with the look measured on ``sample`` when the
    frames share one."""
    from ..depthstyle_core.stylize import clip_look, stylize

    pooled = args.frames in POOLED
    look = None
    if pooled:
        look = clip_look(net, sample, scale=args.scale, tile_size=args.tile, precision=args.precision)

    def paint(frames: torch.Tensor) -> tuple[torch.Tensor, None]:
        mask = mask_for(args, frames, normalization="per_batch")
        mode = "shared" if pooled else "independent"
        return stylize(net, frames, mask=mask, frames=mode, look=look, **settings), None

    return paint


def _scale(text: str) -> float:
    """A brush-size factor above 0 and at most MAX_SCALE, for argparse."""
    from ..depthstyle_core.stylize import MAX_SCALE

    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0.0 < value <= MAX_SCALE:
        raise argparse.ArgumentTypeError(f"expected a number above 0 and at most {MAX_SCALE:g}, got {text!r}")
    return value


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "stylize",
        help="stylise images with any painting (--style) or a trained style model (--model)",
        description="Stylise each image at its full resolution: with any painting in one pass of the "
        "built-in network (--style; no download, depth-aware), or with a trained style model (--model).",
    )
    parser.add_argument(
        "images", nargs="+", help="image files or folders, or video files (.mp4, .mov, .mkv, .webm, ...)"
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--style",
        nargs="+",
        metavar="PAINTING",
        help="any painting(s): the built-in network paints with them at once; several are blended",
    )
    source.add_argument("--model", help="a trained style model: a .safetensors path or a file in styles/")
    parser.add_argument(
        "-o",
        "--output",
        required=True,
        help="output folder (a clip becomes CLIP_styled.mp4 in it), or the file name for one video",
    )
    parser.add_argument(
        "--strength", type=fraction, default=1.0, help="0 keeps the photo, 1 is the full style (default 1)"
    )
    parser.add_argument(
        "--preserve-color", action="store_true", help="keep the photo's colours, take only the style's light"
    )
    parser.add_argument(
        "--scale",
        type=_scale,
        default=1.0,
        help="Brush size: the style is painted on the image resized by this factor and brought back to "
        "its size (with --style guided by the photo's outlines, with --model bicubic); 0.5 paints strokes "
        "twice as large (default 1)",
    )
    parser.add_argument(
        "--frames",
        choices=("independent", "shared", "flow"),
        default=None,
        help="shared: the images are frames of one video (all the same size, in order) and share one look. "
        "flow: the same, and the texture is held still on moving things along the optical flow (needs "
        "OpenCV). Default: flow for video files, independent for images",
    )
    parser.add_argument(
        "--tile", type=int, default=0, help="tile size in pixels for huge images (default 0: whole image)"
    )
    parser.add_argument("--precision", choices=("fp32", "fp16", "bf16"), default="fp32", help="CUDA only")
    parser.add_argument(
        "--depth-model",
        default="small",
        help="depth model for --depth-preserve and --depth-mask: small (default), base, large or a "
        ".safetensors path",
    )
    add_any_style_arguments(parser)
    add_mask_arguments(parser)
    add_video_arguments(parser)
    parser.set_defaults(run=_stylize_command, runtime_of=any_style_runtime)
