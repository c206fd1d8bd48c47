"""The mask options of the commands that stylise: where the style goes, per pixel.

A command adds them with ``add_mask_arguments(parser)`` and gets each image's mask with
``mask_for(args, images)``. ``--depth-mask`` estimates depth with the command's ``--depth-model``.
"""

from __future__ import annotations

import argparse
import sys
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from ..depthstyle_core.depth import DepthEstimator

DEPTH_MASK_HELP = (
    "stylise only the depth band NEAR..FAR of the normalised depth (1 = nearest, 0 = farthest), fading "
    "out over SOFTNESS (default 0.1) outside it: 1:0.5 the nearer half, 0.5:0 the farther half (keeps the "
    "subject near the camera as it is). Depth comes from --depth-model"
)


def depth_band(text: str) -> tuple[float, float, float]:
    """Parse ``NEAR:FAR[:SOFTNESS]`` for argparse: numbers in 0..1 with FAR <= NEAR."""
    from ..depthstyle_core.errors import MaskError
    from ..depthstyle_core.masks import DEFAULT_SOFTNESS, check_depth_band

    parts = text.split(":")
    try:
        values = [float(part) for part in parts]
    except ValueError:
        values = []
    if len(parts) not in (2, 3) or len(values) != len(parts):
        raise argparse.ArgumentTypeError(
            f"expected NEAR:FAR or NEAR:FAR:SOFTNESS with numbers from 0 to 1, e.g. 0.5:0 or 1:0.6:0.2; "
            f"got {text!r}"
        )
    near, far, softness = (*values, DEFAULT_SOFTNESS)[:3]
    try:
        check_depth_band(near, far, softness)
    except MaskError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return near, far, softness


def pixels(text: str) -> int:
    """A number of pixels, 0 or more, for argparse."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number of pixels, 0 or more; got {text!r}")
    return value


def add_mask_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--depth-mask NEAR:FAR[:SOFTNESS]`` or ``--mask FILE``, with ``--mask-feather`` and
    ``--invert-mask``. The command must also have ``--depth-model`` for ``--depth-mask``."""
    group = parser.add_argument_group("where to stylise (default: everywhere)")
    source = group.add_mutually_exclusive_group()
    source.add_argument("--depth-mask", type=depth_band, metavar="NEAR:FAR[:SOFTNESS]", help=DEPTH_MASK_HELP)
    source.add_argument(
        "--mask",
        type=Path,
        metavar="FILE",
        help="a greyscale image: white = full style, black = keep the photo, grey = partly (resized to "
        "each image; 8 or 16 bit)",
    )
    group.add_argument(
        "--mask-feather",
        type=pixels,
        default=0,
        metavar="PX",
        help="blur the mask's edges by this radius in pixels (default 0)",
    )
    group.add_argument("--invert-mask", action="store_true", help="stylise where the mask is black instead")


def mask_for(
    args: argparse.Namespace,
    images: torch.Tensor,
    *,
    normalization: str = "per_image",
    depth: torch.Tensor | None = None,
) -> torch.Tensor | None:
    """The mask ``[B,1,H,W]`` for ``images`` ``[B,3,H,W]`` that the options ask for; None without one.

    ``normalization`` is the depth normalisation for ``--depth-mask``: ``per_batch`` keeps the mask of
    a video's frames steady. ``depth`` (normalised as asked) saves estimating it again.
    """
    from ..depthstyle_core.masks import depth_to_mask, fit_mask, gaussian_blur, load_mask

    batch, _, height, width = images.shape
    if args.mask is not None:
        mask = fit_mask(load_mask(args.mask), batch, height, width)
        mask = 1 - mask if args.invert_mask else mask
        return gaussian_blur(mask, args.mask_feather)
    if args.depth_mask is None:
        return None
    from ..depthstyle_core.depth import estimate_depth

    near, far, softness = args.depth_mask
    if depth is None:
        depth = estimate_depth(depth_model_for(args), images, normalization=normalization)
    return depth_to_mask(
        depth, near=near, far=far, softness=softness, feather=args.mask_feather, invert=args.invert_mask
    )


def depth_model_for(args: argparse.Namespace) -> DepthEstimator:
    """The command's ``--depth-model``, loaded once per run."""
    return _depth_model(_depth_model_name(args), args.models_dir, args.device)


def _depth_model_name(args: argparse.Namespace) -> str:
    from ..depthstyle_core.errors import MaskError

    name = getattr(args, "depth_model", None)
    if name is None or str(name).lower() == "none":
        raise MaskError("--depth-mask needs a depth model: add --depth-model small (or base, large, a file)")
    return name


@lru_cache(maxsize=2)
def _depth_model(name: str, models_dir: Path, device: str) -> DepthEstimator:
    """The depth model for ``--depth-mask``, loaded once per run."""
    from ..depthstyle_core.depth import load_depth_model

    estimator = load_depth_model(name, model_dirs=[Path(models_dir) / "depth"], device=device)
    print(f"depth model: {estimator.name} (licence {estimator.licence})", file=sys.stderr)
    return estimator
