"""``depthstyle evaluate``: the structure report of stylised images against their photos.

Pairs are found by file stem: the stylised ``x.png``, ``x_styled.png`` or ``x_optimized.png`` belongs to the
content image ``x.*``. Writes ``metrics.csv``, ``summary.json`` and a figure ``<stylised stem>_report.png``
per pair. Files that cannot be paired or read are reported, skipped, and make the exit status 3.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from .common import EXIT_SKIPPED, expand_images, output_folder, output_stems
from .report_common import (
    add_report_options,
    left_out,
    load_report_models,
    report_skipped,
    write_csv,
    write_json,
)

STYLIZED_SUFFIXES = ("_styled", "_optimized")
PAIR_COLUMNS = ("content", "stylized")


def _candidate_stems(stem: str) -> list[str]:
    """The content stems a stylised file's stem may belong to, the exact stem first."""
    stems = [stem]
    stems += [
        stem[: -len(suffix)] for suffix in STYLIZED_SUFFIXES if stem.endswith(suffix) and stem != suffix
    ]
    return stems


def pair_by_stem(
    contents: Sequence[Path], stylized: Sequence[Path]
) -> tuple[list[tuple[Path, Path]], list[dict[str, str]]]:
    """(content, stylised) pairs by file stem, and the files left out with the reason (``file``, ``reason``).

    A content image may have several stylised images (``x_styled.png`` and ``x_optimized.png``); two content
    images with one stem are ambiguous and both left out.
    """
    by_stem: dict[str, list[Path]] = defaultdict(list)
    for path in contents:
        by_stem[path.stem].append(path)
    skipped = [
        {
            "file": str(path),
            "reason": f"more than one content image is named {stem}.*: " + ", ".join(map(str, paths)),
        }
        for stem, paths in by_stem.items()
        if len(paths) > 1
        for path in paths
    ]
    pairs: list[tuple[Path, Path]] = []
    for path in stylized:
        stem = next((s for s in _candidate_stems(path.stem) if s in by_stem), None)
        if stem is None:
            expected = " or ".join(f"{s}.*" for s in _candidate_stems(path.stem))
            skipped.append(
                {"file": str(path), "reason": f"no content image to compare with (looked for {expected})"}
            )
        elif len(by_stem[stem]) == 1:
            pairs.append((by_stem[stem][0], path))
    paired = {content for content, _ in pairs}
    for stem, paths in by_stem.items():
        if len(paths) == 1 and paths[0] not in paired:
            names = ", ".join(f"{stem}{suffix}.*" for suffix in ("", *STYLIZED_SUFFIXES))
            skipped.append(
                {"file": str(paths[0]), "reason": f"no stylised image for it (looked for {names})"}
            )
    return pairs, skipped


def _evaluate_command(args: argparse.Namespace) -> int:
    import torch

    from ..depthstyle_core.errors import InputImageError
    from ..depthstyle_core.images import load_image
    from ..depthstyle_core.report.figure import draw_structure_figure
    from ..depthstyle_core.report.metrics import METRIC_NAMES, evaluate_structure, mean_metrics

    if args.video:
        from .evaluate_video import evaluate_video

        return evaluate_video(args)
    pairs, skipped = pair_by_stem(expand_images(args.content), expand_images(args.stylized))
    if not pairs:
        report_skipped("evaluate", skipped)
        raise InputImageError(
            "no (content, stylised) pairs found: a stylised image x.png, x_styled.png or x_optimized.png "
            "needs a content image x.* (see the list above)"
        )
    out_dir = output_folder(args.output)
    names = output_stems([stylized for _, stylized in pairs])
    models = load_report_models(args, depth_optional=True)
    rows = []
    with torch.inference_mode():
        for index, (content_path, stylized_path) in enumerate(pairs, start=1):
            try:
                content, stylized = load_image(content_path), load_image(stylized_path)
            except InputImageError as error:
                skipped.append({"file": f"{content_path} + {stylized_path}", "reason": str(error)})
                continue
            (report,) = evaluate_structure(
                content,
                stylized,
                models.depth,
                style=models.style,
                vgg=models.vgg,
                resolution=args.resolution,
                edge_tolerance=args.edge_tolerance,
            )
            out_dir.mkdir(parents=True, exist_ok=True)
            written = out_dir / "metrics.csv"
            if report.depth is not None:
                written = out_dir / f"{names[stylized_path]}_report.png"
                draw_structure_figure(report).save(written)
            rows.append(
                {"content": str(content_path), "stylized": str(stylized_path), **report.metrics.as_dict()}
            )
            print(f"[{index}/{len(pairs)}] {stylized_path} vs {content_path} -> {written}", file=sys.stderr)
    if rows:
        write_csv(out_dir / "metrics.csv", rows, (*PAIR_COLUMNS, *METRIC_NAMES))
    summary = {
        "settings": models.settings,
        "mean": mean_metrics(rows),
        "pairs": rows,
        "skipped": skipped,
        "left_out": left_out(models),
    }
    write_json(out_dir / "summary.json", summary)
    report_skipped("evaluate", skipped)
    print(
        f"{len(rows)} pairs evaluated: {out_dir / 'metrics.csv'}, {out_dir / 'summary.json'}", file=sys.stderr
    )
    return EXIT_SKIPPED if skipped else 0


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "evaluate",
        help="measure how well stylised images keep their photos' depth and outlines",
        description="Compare each stylised image with its photo: depth agreement through one depth network "
        "(scale-and-shift aligned AbsRel and delta<1.25, Spearman rho), edge F1, SSIM, and with --style the "
        "Gram-matrix style distance. Pairs by file stem: x.jpg with x.png, x_styled.png or x_optimized.png. "
        "Writes metrics.csv, summary.json and a figure per pair. Exit status 3 when files were skipped. "
        "With --video the inputs are the frames of one clip (in name order, or a video file) and the "
        "warping error (Lai et al. 2018) of the stylised clip and of the input clip is measured too.",
    )
    parser.add_argument(
        "--content",
        nargs="+",
        required=True,
        help="the photos: image files or folders (or a video with --video)",
    )
    parser.add_argument(
        "--stylized",
        nargs="+",
        required=True,
        help="the stylised images: files or folders (or a video with --video)",
    )
    parser.add_argument(
        "--video",
        action="store_true",
        help="the images are the frames of one clip, in order: also measure the warping error between "
        "consecutive frames and frames 10 apart (needs OpenCV for the optical flow)",
    )
    parser.add_argument("-o", "--output", required=True, help="output folder")
    add_report_options(parser)
    parser.set_defaults(run=_evaluate_command)
