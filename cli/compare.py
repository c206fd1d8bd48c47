"""``depthstyle compare``: stylise photos with several style models and compare how well each keeps the
photos' structure (the paper's comparison of a depth-aware model with its baseline, as one command).

Writes ``table.md`` (one row per model: the mean of each metric), ``metrics.csv`` (one row per model and
photo), ``summary.json``, a figure ``<photo stem>_compare.png`` per photo with the models side by side, and
the stylised images under ``stylized/<model>/``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from .common import EXIT_SKIPPED, expand_images
from .report_common import (
    add_report_options,
    load_report_models,
    report_skipped,
    write_csv,
    write_json,
    write_text,
)

TABLE_HEADINGS = {
    "depth_absrel": "depth AbsRel ↓",
    "depth_delta1": "δ<1.25 ↑",
    "depth_spearman": "Spearman ρ ↑",
    "edge_f1": "edge F1 ↑",
    "edge_precision": "edge P ↑",
    "edge_recall": "edge R ↑",
    "ssim": "SSIM ↑",
    "style_distance": "style distance ↓",
}


def model_labels(models: Sequence[str]) -> list[str]:
    """A short, unique label per model: its file stem, numbered when two stems are the same."""
    stems = [Path(model).stem for model in models]
    return [stem if stems.count(stem) == 1 else f"{stem} ({index + 1})" for index, stem in enumerate(stems)]


def _cell(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3f}" if abs(value) >= 1e-3 or value == 0 else f"{value:.3e}"


def markdown_table(
    means: Mapping[str, Mapping[str, float | None]], counts: Mapping[str, int], settings: Mapping[str, object]
) -> str:
    """The comparison table: one row per model, the mean of each metric over its photos."""
    names = [name for name in TABLE_HEADINGS if any(m.get(name) is not None for m in means.values())]
    lines = [
        "| model | photos | " + " | ".join(TABLE_HEADINGS[name] for name in names) + " |",
        "|---|---|" + "---|" * len(names),
    ]
    for label, values in means.items():
        cells = " | ".join(_cell(values.get(name)) for name in names)
        lines.append(f"| {label} | {counts[label]} | {cells} |")
    setting_text = ", ".join(f"{key} {value}" for key, value in settings.items() if value is not None)
    notes = [
        "",
        f"Means over the photos. Settings: {setting_text}.",
        "Depth: the stylised image's depth aligned to the photo's by least-squares scale and shift on "
        "inverse depth, then compared in depth space; edge F1/P/R: Canny-style edges of the luminance "
        "matched within the tolerance; SSIM on luminance; style distance: Gram matrices at VGG-16 "
        "relu1_2..relu4_3.",
    ]
    return "\n".join(lines + notes) + "\n"


def _compare_command(args: argparse.Namespace) -> int:
    import torch

    from ..depthstyle_core.errors import InputImageError
    from ..depthstyle_core.images import load_image, save_image
    from ..depthstyle_core.metrics import METRIC_NAMES, evaluate_structure, mean_metrics
    from ..depthstyle_core.report_figure import draw_comparison_figure
    from ..depthstyle_core.style_model import load_style_model
    from ..depthstyle_core.stylize import stylize

    photos = expand_images(args.images)
    if not photos:
        raise SystemExit("depthstyle compare: no images found in " + ", ".join(args.images))
    labels = model_labels(args.models)
    nets = [
        load_style_model(m, model_dirs=[args.models_dir / "styles"])[0].to(args.device) for m in args.models
    ]
    models = load_report_models(args)
    out_dir = Path(args.output)
    rows, skipped = [], []
    with torch.inference_mode():
        for index, path in enumerate(photos, start=1):
            try:
                photo = load_image(path)
            except InputImageError as error:
                skipped.append({"file": str(path), "reason": str(error)})
                continue
            styled = torch.cat([stylize(net, photo, tile_size=args.tile) for net in nets])
            reports = evaluate_structure(
                photo,
                styled,
                models.depth,
                style=models.style,
                vgg=models.vgg,
                resolution=args.resolution,
                edge_tolerance=args.edge_tolerance,
            )
            for label, image, report in zip(labels, styled, reports, strict=True):
                save_image(image, out_dir / "stylized" / label / f"{path.stem}_styled.png")
                rows.append({"model": label, "image": str(path), **report.metrics.as_dict()})
            figure = out_dir / f"{path.stem}_compare.png"
            draw_comparison_figure(list(zip(labels, reports, strict=True))).save(figure)
            print(f"[{index}/{len(photos)}] {path} -> {figure}", file=sys.stderr)
    if not rows:
        report_skipped("compare", skipped)
        raise InputImageError("none of the images could be read (see the list above)")
    means = {label: mean_metrics(r for r in rows if r["model"] == label) for label in labels}
    counts = {label: sum(r["model"] == label for r in rows) for label in labels}
    settings = {**models.settings, "models": dict(zip(labels, args.models, strict=True))}
    write_text(out_dir / "table.md", markdown_table(means, counts, models.settings))
    write_csv(out_dir / "metrics.csv", rows, ("model", "image", *METRIC_NAMES))
    write_json(
        out_dir / "summary.json", {"settings": settings, "mean": means, "rows": rows, "skipped": skipped}
    )
    report_skipped("compare", skipped)
    print(f"table: {out_dir / 'table.md'}", file=sys.stderr)
    return EXIT_SKIPPED if skipped else 0


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "compare",
        help="compare style models by how well they keep the photos' structure",
        description="Stylise the photos with each style model and measure each result against its photo "
        "(depth agreement, edge F1, SSIM, and with --style the style distance). Writes table.md (one row per "
        "model), metrics.csv, summary.json, a figure per photo with the models side by side, and the "
        "stylised images. Exit status 3 when files were skipped.",
    )
    parser.add_argument(
        "--models", nargs="+", required=True, help="style models: .safetensors paths or files in styles/"
    )
    parser.add_argument("--images", nargs="+", required=True, help="the photos: image files or folders")
    parser.add_argument("-o", "--output", required=True, help="output folder")
    parser.add_argument(
        "--tile", type=int, default=0, help="stylisation tile size for huge images (default 0: whole image)"
    )
    add_report_options(parser)
    parser.set_defaults(run=_compare_command)
