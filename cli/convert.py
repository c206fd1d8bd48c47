"""``depthstyle convert``: turn pickled weights into safetensors, on request: a community fast_neural_style
model (one ``.pth``), or the authors' MicroAST weights (four files, or the folder that holds them)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _is_microast(sources: list[str]) -> bool:
    """Whether the files named are the any-painting network's parts (or a folder of them)."""
    from ..depthstyle_core.models.microast import PARTS

    paths = [Path(source) for source in sources]
    return len(paths) > 1 or any(p.is_dir() or p.name.startswith(PARTS) for p in paths)


def _convert_command(args: argparse.Namespace) -> int:
    from ..depthstyle_core.any_style.model_file import convert_microast_checkpoints
    from ..depthstyle_core.style_model import convert_pickle_to_safetensors

    if _is_microast(args.model):
        written = convert_microast_checkpoints(args.model, args.output)
    else:
        written = convert_pickle_to_safetensors(args.model[0], args.output)
    print(f"{', '.join(args.model)} -> {written}", file=sys.stderr)
    return 0


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "convert",
        help="convert pickled weights (.pth) to safetensors: a fast_neural_style model, MicroAST's files",
        description="Convert a community fast_neural_style model (.pth/.model, a plain state dict) into a "
        "DepthStyle .safetensors style model; or the four files of the authors' MicroAST weights "
        "(content_encoder_*, style_encoder_*, modulator_*, decoder_*; or their folder) into one any-painting "
        "model. Only plain tensors are unpickled (weights_only=True).",
    )
    parser.add_argument("model", nargs="+", help="the .pth file, or MicroAST's four files or their folder")
    parser.add_argument("-o", "--output", required=True, help="the .safetensors file to write")
    parser.set_defaults(run=_convert_command)
