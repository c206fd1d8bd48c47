"""``depthstyle convert``: turn a pickled community style model into safetensors, on request."""

from __future__ import annotations

import argparse
import sys


def _convert_command(args: argparse.Namespace) -> int:
    from ..depthstyle_core.style_model import convert_pickle_to_safetensors

    written = convert_pickle_to_safetensors(args.model, args.output)
    print(f"{args.model} -> {written}", file=sys.stderr)
    return 0


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "convert",
        help="convert a pickled fast_neural_style model (.pth) to safetensors",
        description="Convert a community fast_neural_style model (.pth/.model, a plain state dict) into "
        "a DepthStyle .safetensors style model. Only plain tensors are unpickled (weights_only=True).",
    )
    parser.add_argument("model", help="the .pth file")
    parser.add_argument("-o", "--output", required=True, help="the .safetensors file to write")
    parser.set_defaults(run=_convert_command)
