"""``depthstyle stylize-dataset``: paint a whole folder of photos with paintings drawn at random (the
Stylized-ImageNet recipe), on one process or under torchrun, resumable, each image exactly once."""

from __future__ import annotations

import argparse
import re
import signal
import sys
from typing import TYPE_CHECKING

from .common import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_OK, EXIT_SKIPPED, add_collective_timeout, fraction
from .masks import pixels
from .progress import ConsoleProgress, StopOnSignals, warnings_below_the_bar

if TYPE_CHECKING:
    import torch

    from ..trainers.datasets import DatasetResult
    from ..trainers.distributed import Team


def _command(args: argparse.Namespace) -> int:
    from ..trainers.distributed import SINGLE, join_torchrun, launched_by_torchrun

    with warnings_below_the_bar(), StopOnSignals((signal.SIGINT, signal.SIGTERM)) as stop:
        if not launched_by_torchrun():
            return _run(args, SINGLE, args.device, stop)
        with join_torchrun(args.device, args.collective_timeout) as (team, device):
            return _run(args, team, device, stop)


def _run(args: argparse.Namespace, team: Team, device: str | torch.device, stop: StopOnSignals) -> int:
    """Stylise this process's share; only rank 0 talks."""
    from ..depthstyle_core.depth import load_depth_model
    from ..depthstyle_core.errors import DepthStyleError, DistributedTrainingError
    from ..trainers.datasets import DatasetConfig, stylize_dataset

    def say(text: str) -> None:
        if team.is_main:
            print(text, file=sys.stderr, flush=True)

    try:
        config = DatasetConfig(
            styles_per_image=args.styles_per_image,
            strength=args.strength,
            depth_preserve=args.depth_preserve,
            content_size=args.content_size,
            style_size=args.style_size,
            crop=args.crop,
            preserve_color=args.preserve_color,
            seed=args.seed,
            format=args.format,
            quality=args.quality,
            extensions=tuple(args.extensions),
            workers=args.workers,
            batch_size=args.batch_size,
            precision=args.precision,
        )
    except ValueError as exc:
        print(f"depthstyle stylize-dataset: error: {_as_options(str(exc))}", file=sys.stderr)
        return EXIT_ERROR
    if team.is_distributed:
        say(f"{team.world_size} processes share the photos")
    progress = ConsoleProgress(enabled=team.is_main, unit="images")
    try:
        depth = None
        if args.depth_preserve > 0:
            depth = load_depth_model(args.depth_model, model_dirs=[args.models_dir / "depth"], device=device)
            say(f"depth model: {depth.name} (licence {depth.licence})")
        result = stylize_dataset(
            args.content_dir,
            args.output,
            style_dir=args.style_dir,
            style_model=args.model,
            any_model=args.any_model,
            config=config,
            depth_model=depth,
            model_dirs=[args.models_dir / ("styles" if args.model else "any_style")],
            device=device,
            team=team,
            on_progress=progress,
            should_stop=stop,
        )
    except KeyboardInterrupt:
        progress.end_line()
        say("interrupted: the images in flight are lost; run the same command again to finish the dataset")
        return EXIT_INTERRUPTED
    except DepthStyleError as exc:
        progress.end_line()
        if team.is_main or isinstance(exc, DistributedTrainingError):
            raise
        return EXIT_ERROR  # every process met the same error: rank 0 reports it
    progress.end_line()
    for line in summary(result):
        say(line)
    if result.stopped and stop.received is not None:
        return 128 + stop.received
    skipped = result.unreadable_photos or result.unreadable_paintings
    return EXIT_SKIPPED if skipped and team.is_main else EXIT_OK  # torchrun reports one status 3, not N


def _runtime(args: argparse.Namespace, device: str) -> str | None:
    """What runs the any-painting network (the library's automatic choice), or None for a trained style."""
    from ..depthstyle_core.runtimes import chosen_runtime

    return None if args.model else chosen_runtime("auto", device)


def _as_options(message: str) -> str:
    """A settings error worded with the command's options (``content_size`` -> ``--content-size``)."""
    from dataclasses import fields

    from ..trainers.datasets import DatasetConfig

    for name in sorted((f.name for f in fields(DatasetConfig)), key=len, reverse=True):
        message = re.sub(rf"\b(?<!-){name}\b", "--" + name.replace("_", "-"), message)
    return message


def summary(result: DatasetResult) -> list[str]:
    """The lines printed at the end: what was written, how fast, what is missing and why."""
    from ..trainers.data import unreadable_summary

    out = result.output_dir
    lines = [
        f"stylised {result.written} images in {result.seconds:.1f} s ({result.images_per_s:.1f} images/s); "
        f"{result.already_done} of {result.total} were done before; manifest: {out / 'manifest.csv'}"
    ]
    if result.unreadable_photos or result.unreadable_paintings:
        found = [
            unreadable_summary(names, what=what)
            for names, what in (
                (result.unreadable_photos, "photo"),
                (result.unreadable_paintings, "painting"),
            )
            if names
        ]
        lines.append(f"skipped {'; '.join(found)} (all listed in {out / 'skipped.csv'})")
    if result.stopped:
        lines.append(
            f"stopped: {result.missing} images are still to do; run the same command again to finish them"
        )
    return lines


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "stylize-dataset",
        help="stylise a whole folder of photos with random paintings (Stylized-ImageNet), resumable",
        description="Paint every photo under --content-dir with paintings drawn at random from --style-dir "
        "(or with a trained --model) into -o, mirroring the folders and keeping the file stems. Which "
        "paintings a photo gets depends only on --seed and the photo's path. Runs under torchrun on many "
        "GPUs and machines; a rerun of the same command skips the finished images (manifest.csv) and does "
        "the rest. Exit status 3 when photos or paintings could not be read (listed in skipped.csv).",
    )
    parser.add_argument("--content-dir", required=True, help="folder of photos (searched recursively)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--style-dir", help="folder of paintings (searched recursively)")
    source.add_argument(
        "--model", help="a trained style model instead: a .safetensors path or a file in styles/"
    )
    parser.add_argument("-o", "--output", required=True, help="output folder (outside --content-dir)")
    parser.add_argument(
        "--styles-per-image",
        type=int,
        default=1,
        metavar="N",
        help="different paintings per photo (default 1)",
    )
    parser.add_argument(
        "--strength", type=fraction, default=1.0, help="0 keeps the photo, 1 is the full style (default 1)"
    )
    parser.add_argument(
        "--depth-preserve",
        type=fraction,
        default=0.0,
        metavar="P",
        help="how much of the photo the nearest things keep, 0 to 1 (default 0: no depth network)",
    )
    parser.add_argument(
        "--depth-model", default="small", help="for --depth-preserve: small (default), base, large or a path"
    )
    parser.add_argument(
        "--content-size",
        type=pixels,
        default=0,
        metavar="PX",
        help="resize each photo so that its shorter side is PX (default 0: keep its size)",
    )
    parser.add_argument(
        "--style-size",
        type=pixels,
        default=512,
        metavar="PX",
        help="the painting's longer side before it is read (default 512; 0 keeps its size)",
    )
    parser.add_argument(
        "--crop", action="store_true", help="cut the centre square of --content-size (all outputs one size)"
    )
    parser.add_argument("--preserve-color", action="store_true", help="keep the photos' colours")
    parser.add_argument(
        "--any-model", metavar="FILE", help="an any-painting model file instead of the built-in network"
    )
    parser.add_argument("--seed", type=int, default=0, help="which paintings each photo gets (default 0)")
    parser.add_argument(
        "--extensions",
        nargs="+",
        default=["jpg", "jpeg", "png", "webp", "bmp"],
        metavar="EXT",
        help="file types of photos and paintings, any case (default: jpg jpeg png webp bmp)",
    )
    parser.add_argument("--format", choices=("jpg", "png", "webp"), default="jpg", help="output format")
    parser.add_argument("--quality", type=int, default=90, help="jpg and webp quality, 1-100 (default 90)")
    parser.add_argument(
        "--workers", type=int, default=4, help="threads per process that decode and encode (default 4)"
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=0,
        help="photos per network pass (default 0: 1 on the CPU, 32 on a GPU)",
    )
    parser.add_argument("--precision", choices=("fp32", "fp16", "bf16"), default="fp32", help="CUDA only")
    add_collective_timeout(parser)
    parser.set_defaults(run=_command, runtime_of=_runtime)
