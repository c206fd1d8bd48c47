"""What ``evaluate`` and ``compare`` share: the metric options, loading the networks, writing the files."""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def _pixels(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more pixels, got {value}")
    return value


def add_report_options(parser: argparse.ArgumentParser) -> None:
    """--style, --depth-model, --resolution and --edge-tolerance."""
    parser.add_argument(
        "--style", help="the style image: also measure the Gram-matrix style distance (needs VGG-16)"
    )
    parser.add_argument(
        "--depth-model",
        default="small",
        help="depth model for both images: small (default), base, large, a path, or none (evaluate: measure "
        "everything else)",
    )
    parser.add_argument(
        "--resolution", type=int, default=518, help="shorter side the depth network sees (default 518)"
    )
    parser.add_argument(
        "--edge-tolerance",
        type=_pixels,
        default=2,
        help="edges this many pixels apart still match (default 2)",
    )


DEPTH_LEFT_OUT = "the depth agreement and the figures are left out"


@dataclass
class ReportModels:
    """The networks and the style image a report needs, and the settings to record."""

    depth: Any
    vgg: Any = None
    style: Any = None
    settings: dict[str, Any] = field(default_factory=dict)


def load_report_models(
    args: argparse.Namespace, needs_vgg: bool = False, depth_optional: bool = False
) -> ReportModels:
    """The depth model from ``--models-dir``/depth; VGG-16 from ``--models-dir``/vgg only with ``--style``
    or ``needs_vgg`` (style distances to other paintings). With ``depth_optional``, ``--depth-model none``
    or a depth model that cannot be had (offline) leaves depth out, said in one line, instead of failing."""
    from ..depthstyle_core.images import load_image
    from ..depthstyle_core.models.vgg import load_vgg16

    style = load_image(args.style) if args.style else None
    depth = _depth_model(args, depth_optional)
    wanted = style is not None or needs_vgg
    vgg = load_vgg16(model_dirs=[args.models_dir / "vgg"]).to(args.device) if wanted else None
    settings = {
        "depth_model": depth.name if depth is not None else None,
        "depth_resolution": args.resolution,
        "edge_tolerance_px": args.edge_tolerance,
        "style": str(args.style) if args.style else None,
    }
    return ReportModels(depth=depth, vgg=vgg, style=style, settings=settings)


def _depth_model(args: argparse.Namespace, optional: bool) -> Any:
    from ..depthstyle_core.depth import load_depth_model
    from ..depthstyle_core.errors import ModelNotAvailableError

    if optional and str(args.depth_model).lower() == "none":
        print(
            f"depthstyle {args.command}: no depth model (--depth-model none): {DEPTH_LEFT_OUT}",
            file=sys.stderr,
        )
        return None
    try:
        depth = load_depth_model(args.depth_model, model_dirs=[args.models_dir / "depth"], device=args.device)
    except ModelNotAvailableError as exc:
        if not optional:
            raise
        reason = " ".join(str(exc).split())
        print(f"depthstyle {args.command}: no depth model, {DEPTH_LEFT_OUT}: {reason}", file=sys.stderr)
        return None
    print(f"depth model: {depth.name} (licence {depth.licence})", file=sys.stderr)
    return depth


def left_out(models: ReportModels) -> list[str]:
    """What the report could not measure, for summary.json."""
    return ["depth agreement", "figures"] if models.depth is None else []


def write_text(path: Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    from ..depthstyle_core.atomic_write import write_bytes_atomic

    return write_bytes_atomic(path, text.encode("utf-8"))


def write_csv(path: Path, rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> Path:
    """One row per mapping; missing and None values are empty cells."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({name: "" if row.get(name) is None else row[name] for name in columns})
    return write_text(path, buffer.getvalue())


def write_json(path: Path, data: Any) -> Path:
    return write_text(path, json.dumps(data, indent=2) + "\n")


def report_skipped(command: str, skipped: Sequence[Mapping[str, str]]) -> None:
    """Print what was skipped and why, one file a line."""
    if skipped:
        print(f"depthstyle {command}: skipped {len(skipped)}:", file=sys.stderr)
        for item in skipped:
            print(f"  {item['file']}: {item['reason']}", file=sys.stderr)
