"""``depthstyle compare``: stylise photos with several models and compare how well each keeps the
photos' structure (the paper's comparison of a depth-aware model with its baseline, as one command).

The models are style models (one style each) or any-painting models (``builtin``, or a file of that
architecture such as a depth-aware fine-tune). Any-painting models paint every photo with every
painting of ``--paintings`` (or with ``--style``), so each model gets the same photo x painting pairs,
and the style distance is measured against each pair's painting.

Writes ``table.md`` (one row per model: the mean of each metric), ``metrics.csv`` (one row per model and
photo or pair), ``summary.json``, a figure per photo (``<photo>_compare.png``) or pair
(``<photo>__<painting>_compare.png``) with the models side by side, and the stylised images under
``stylized/<model>/``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path

from ..depthstyle_core.errors import InputImageError, SettingsError
from .common import EXIT_SKIPPED, expand_images, output_folder, output_stems
from .compare_models import load_painters
from .networks import BUILTIN_MODEL
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


def _cell(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3f}" if abs(value) >= 1e-3 or value == 0 else f"{value:.3e}"


def markdown_table(
    means: Mapping[str, Mapping[str, float | None]],
    counts: Mapping[str, int],
    settings: Mapping[str, object],
    unit: str = "photos",
) -> str:
    """The comparison table: one row per model, the mean of each metric over its photos (or ``unit``)."""
    names = [name for name in TABLE_HEADINGS if any(m.get(name) is not None for m in means.values())]
    lines = [
        f"| model | {unit} | " + " | ".join(TABLE_HEADINGS[name] for name in names) + " |",
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


def _paintings(args: argparse.Namespace, any_painting: bool) -> list[Path | None]:
    """The paintings every any-painting model paints each photo with (``[None]``: no pairs)."""
    if args.paintings:
        found = expand_images(args.paintings)
        if not found:
            raise InputImageError("no paintings found in " + ", ".join(args.paintings))
        return list(found)
    if not any_painting:
        return [None]
    if args.style:
        return [Path(args.style)]
    raise SettingsError(
        "any-painting models need paintings: give --paintings (files or folders; every "
        "photo is painted with every painting) or --style PAINTING"
    )


def _pair_name(photo: str, painting: str | None) -> str:
    return photo if painting is None else f"{photo}__{painting}"


def _compare_command(args: argparse.Namespace) -> int:
    import torch

    from ..depthstyle_core.images import load_image, save_image
    from ..depthstyle_core.report.figure import draw_comparison_figure
    from ..depthstyle_core.report.metrics import METRIC_NAMES, evaluate_structure, mean_metrics

    photos = expand_images(args.images)
    if not photos:
        raise InputImageError("no images found in " + ", ".join(args.images))
    painters = load_painters(args.models, args.models_dir, args.device, args.tile)
    labels = [painter.label for painter in painters]
    painting_paths = _paintings(args, any(p.needs_painting for p in painters))
    paired = painting_paths != [None]
    models = load_report_models(args, needs_vgg=paired)
    out_dir = output_folder(args.output)
    photo_names = output_stems(photos)
    painting_names = output_stems([p for p in painting_paths if p is not None])
    rows, skipped, paintings = [], [], {}
    for path in painting_paths:
        try:
            paintings[path] = None if path is None else load_image(path)
        except InputImageError as error:
            skipped.append({"file": str(path), "reason": str(error)})
    with torch.inference_mode():
        for index, path in enumerate(photos, start=1):
            try:
                photo = load_image(path)
            except InputImageError as error:
                skipped.append({"file": str(path), "reason": str(error)})
                continue
            for painting_path, painting in paintings.items():
                styled = torch.cat([painter.paint(photo, painting) for painter in painters])
                reports = evaluate_structure(
                    photo,
                    styled,
                    models.depth,
                    style=painting if paired else models.style,
                    vgg=models.vgg,
                    resolution=args.resolution,
                    edge_tolerance=args.edge_tolerance,
                )
                name = _pair_name(photo_names[path], painting_names.get(painting_path))
                pair = {"image": str(path), **({"painting": str(painting_path)} if paired else {})}
                for label, image, report in zip(labels, styled, reports, strict=True):
                    save_image(image, out_dir / "stylized" / label / f"{name}_styled.png")
                    rows.append({"model": label, **pair, **report.metrics.as_dict()})
                figure = out_dir / f"{name}_compare.png"
                draw_comparison_figure(list(zip(labels, reports, strict=True))).save(figure)
                print(f"[{index}/{len(photos)}] {name} -> {figure}", file=sys.stderr)
    if not rows:
        report_skipped("compare", skipped)
        raise InputImageError("none of the images could be read (see the list above)")
    means = {label: mean_metrics(r for r in rows if r["model"] == label) for label in labels}
    counts = {label: sum(r["model"] == label for r in rows) for label in labels}
    settings = {**models.settings, "models": dict(zip(labels, args.models, strict=True))}
    if paired:
        settings["paintings"] = [str(p) for p, image in paintings.items() if image is not None]
    unit = "pairs" if paired else "photos"
    write_text(out_dir / "table.md", markdown_table(means, counts, models.settings, unit))
    columns = ("model", "image", *(("painting",) if paired else ()), *METRIC_NAMES)
    write_csv(out_dir / "metrics.csv", rows, columns)
    write_json(
        out_dir / "summary.json", {"settings": settings, "mean": means, "rows": rows, "skipped": skipped}
    )
    report_skipped("compare", skipped)
    print(f"table: {out_dir / 'table.md'}", file=sys.stderr)
    return EXIT_SKIPPED if skipped else 0


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "compare",
        help="compare style or any-painting models by how well they keep the photos' structure",
        description="Stylise the photos with each model and measure each result against its photo "
        "(depth agreement, edge F1, SSIM, and with --style or --paintings the style distance). Any-painting "
        "models (builtin, or files of that architecture) paint every photo with every painting of "
        "--paintings. Writes table.md (one row per model), metrics.csv, summary.json, a figure per photo "
        "or pair with the models side by side, and the stylised images. Exit status 3 when files were "
        "skipped.",
    )
    parser.add_argument(
        "--models",
        nargs="+",
        required=True,
        help=f"style or any-painting models: .safetensors paths, files in styles/ or any_style/, or "
        f"{BUILTIN_MODEL} (the built-in any-painting network)",
    )
    parser.add_argument(
        "--paintings",
        nargs="+",
        metavar="PAINTING",
        help="paintings (files or folders) for the any-painting models: each photo is painted with each "
        "painting, the same pairs for every model, and the style distance is measured against the pair's "
        "painting",
    )
    parser.add_argument("--images", nargs="+", required=True, help="the photos: image files or folders")
    parser.add_argument("-o", "--output", required=True, help="output folder")
    parser.add_argument(
        "--tile", type=int, default=0, help="stylisation tile size for huge images (default 0: whole image)"
    )
    add_report_options(parser)
    parser.set_defaults(run=_compare_command)
