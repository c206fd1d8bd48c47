"""``depthstyle export MODEL -o model.onnx``: a trained style or the any-painting network as ONNX."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .common import EXIT_OK
from .networks import BUILTIN_MODEL, load_network

BUILTIN_LICENCE = "MIT: MicroAST weights by Wang, Zhao, Zuo, Li, Chen, Xing and Lu (AAAI 2023)"


def _export_command(args: argparse.Namespace) -> int:
    from ..depthstyle_core.errors import OutputError
    from ..depthstyle_core.export import OPSET, export_onnx
    from ..depthstyle_core.models.microast import MicroAST

    output = Path(args.output)
    if output.suffix.lower() != ".onnx":
        raise OutputError(f"-o {output}: name an .onnx file")
    net, metadata = load_network(args.model, args.models_dir)
    builtin = args.model == BUILTIN_MODEL
    any_painting = isinstance(net, MicroAST)
    described = {
        "model": "built-in any-painting network" if builtin else Path(args.model).name,
        "architecture": "MicroAST" if any_painting else "TransformerNet",
        "licence": BUILTIN_LICENCE if builtin else metadata.get("licence", "not stated in the model file"),
        "inputs": "photo [N,3,H,W]"
        + (", painting [1,3,h,w]" if any_painting else "")
        + ": RGB 0..1, sides of 8 pixels or more",
        "outputs": "stylized [N,3,H,W]: RGB 0..1",
    }
    opset = args.opset or OPSET
    written = export_onnx(net, output, described, opset=opset)
    print(
        f"{args.model} -> {written} ({written.stat().st_size / 1e6:.1f} MB, opset {opset})", file=sys.stderr
    )
    return EXIT_OK


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "export",
        help="write a style model or the any-painting network as ONNX (apps, browsers, game engines)",
        description="Write a network as an ONNX file that takes photos of any size (8 pixels or more a "
        "side): a trained style (input: photo) or the any-painting network (inputs: photo and painting; "
        "'builtin' or a model file). Needs the onnx and onnxscript packages.",
    )
    parser.add_argument("model", help="builtin, or a model file: a path or a name in styles/ or any_style/")
    parser.add_argument("-o", "--output", required=True, help="the .onnx file to write")
    parser.add_argument(
        "--opset", type=int, help="ONNX opset (default 18: onnxruntime 1.14+, onnxruntime-web)"
    )
    parser.set_defaults(run=_export_command)
