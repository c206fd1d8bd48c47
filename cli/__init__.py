"""The ``depthstyle`` command line: depth maps, stylisation, optimisation, training, conversion and the
structure report (``evaluate``, ``compare``).

One module per command; each adds its sub-parser with ``add_parser`` and imports torch and the
library only when it runs, so ``depthstyle --help`` answers at once.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from . import compare, convert, depth, evaluate, optimize, stylize, train
from .common import EXIT_ERROR, default_models_dir

COMMANDS = (depth, stylize, optimize, train, evaluate, compare, convert)


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
    for command in COMMANDS:
        command.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``depthstyle`` console script."""
    from ..depthstyle_core.errors import DepthStyleError

    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except DepthStyleError as exc:
        print(f"depthstyle {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
