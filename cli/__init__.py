"""The ``depthstyle`` command line: depth maps, stylisation (of images, or of whole datasets), optimisation,
training, conversion and the structure report (``evaluate``, ``compare``).

One module per command; each adds its sub-parser with ``add_parser`` and imports torch and the
library only when it runs, so ``depthstyle --help`` answers at once.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from . import compare, convert, depth, evaluate, export, optimize, stylize, stylize_dataset, train, train_any
from .common import EXIT_ERROR, default_models_dir

COMMANDS = (depth, stylize, stylize_dataset, optimize, train, train_any, evaluate, compare, convert, export)


def add_global_options(parser: argparse.ArgumentParser, *, after_command: bool = False) -> None:
    """``--models-dir`` and ``--device``. They are accepted before the command (with their defaults)
    and again after it, where they are only set when given, so either place works."""
    hidden = {"default": argparse.SUPPRESS} if after_command else {}
    parser.add_argument(
        "--models-dir",
        type=Path,
        help="model folder with depth/, styles/, vgg/ and any_style/ inside "
        "(default: ~/.cache/depthstyle/models)",
        **(hidden or {"default": default_models_dir()}),
    )
    parser.add_argument(
        "--device",
        help="torch device: auto (default: CUDA, else Apple MPS, else Intel XPU, else the CPU), cpu, cuda, "
        "cuda:1, mps, ...",
        **(hidden or {"default": "auto"}),
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command registered."""
    parser = argparse.ArgumentParser(
        prog="depthstyle",
        description="Depth-aware neural style transfer: depth maps, stylisation with any painting or a "
        "trained style, style training.",
    )
    add_global_options(parser)
    commands = parser.add_subparsers(title="commands", dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(commands)
    for subparser in commands.choices.values():
        add_global_options(subparser, after_command=True)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``depthstyle`` console script."""
    from ..depthstyle_core.errors import DepthStyleError

    args = build_parser().parse_args(argv)
    try:
        args.device = _chosen_device(args)
        return args.run(args)
    except DepthStyleError as exc:
        print(f"depthstyle {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except OSError as exc:  # the system refused a file: no permission, a full disk, a folder in the way
        shown = f"{exc.strerror}: {exc.filename}" if exc.strerror and exc.filename else str(exc)
        print(f"depthstyle {args.command}: error: {shown}", file=sys.stderr)
        return EXIT_ERROR


def _chosen_device(args: argparse.Namespace) -> str:
    """The device to run on. ``auto`` is resolved, and so is the runtime of a command that runs the
    any-painting network (``args.runtime_of``, which settles ``args.runtime``); what was chosen is said
    on the console."""
    from ..depthstyle_core.devices import AUTO, check_device, resolve_device

    chosen = resolve_device(args.device) if args.device == AUTO else check_device(args.device)
    runtime = args.runtime_of(args, chosen) if hasattr(args, "runtime_of") else None
    how = [runtime] if runtime is not None else []
    if args.device == AUTO:
        how.append("--device auto")
    if how:
        print(f"depthstyle: running on {chosen} ({', '.join(how)})", file=sys.stderr)
    return chosen
