"""Figures of the structure report, drawn with PIL alone (no plotting library).

Depth panels show disparity (near = bright) in the colour map of :mod:`..colormap`, the content's and the
aligned stylised depth on one scale (the content's range), so equal colours mean equal depth. The error
panel shows the per-pixel relative depth error ``|d_s - d_c| / d_c`` from 0 (dark) to
:data:`ERROR_SCALE` or more (bright); grey where the content's depth is undefined (sky).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

from ..colormap import apply_colormap
from ..images import pil_to_tensor, tensor_to_pil
from .metrics import StructureMetrics, StructureReport

ERROR_SCALE = 0.5
BACKGROUND = (255, 255, 255)
TEXT = (30, 30, 30)
UNDEFINED_GREY = 0.5
GAP = 8
FONT_SIZE = 14
LINE = FONT_SIZE + 4
ERROR_LEGEND = f"error |d_s - d_c| / d_c: 0 dark .. {ERROR_SCALE:g}+ bright"
UNDEFINED_LEGEND = "grey: no content depth (sky)"


def _font() -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=FONT_SIZE)
    except TypeError:  # Pillow < 10.1 has one bitmap font size only
        return ImageFont.load_default()


def _format(value: float | None, digits: int = 3) -> str:
    if value is None or math.isnan(value):
        return "n/a"
    return f"{value:.{digits}f}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"


def metric_lines(metrics: StructureMetrics) -> list[str]:
    """The metrics as short lines of text, with the direction that is better."""
    lines = [
        f"depth AbsRel {_format(metrics.depth_absrel)} (lower is better)",
        f"depth delta<1.25 {_format(metrics.depth_delta1)}   Spearman rho {_format(metrics.depth_spearman)}",
        f"edge F1 {_format(metrics.edge_f1)} (P {_format(metrics.edge_precision)}, "
        f"R {_format(metrics.edge_recall)})",
        f"SSIM {_format(metrics.ssim)}",
    ]
    if metrics.style_distance is not None:
        lines.append(f"style distance {_format(metrics.style_distance)} (lower is better)")
    return lines


def depth_panels(report: StructureReport) -> tuple[Tensor, Tensor, Tensor]:
    """Colour ``[3,H,W]`` images of the content's depth, the aligned stylised depth and the error map."""
    reference = report.content_depth
    low, high = float(reference.min()), float(reference.max())
    span = high - low if high > low else 1.0

    def colour(disparity: Tensor) -> Tensor:
        return apply_colormap(((disparity - low) / span).float()[None, None])[0]

    error = report.depth.error
    error_rgb = apply_colormap((error.nan_to_num(0.0) / ERROR_SCALE).float()[None, None])[0]
    error_rgb = torch.where(torch.isnan(error)[None], torch.full_like(error_rgb, UNDEFINED_GREY), error_rgb)
    return colour(reference), colour(report.depth.aligned), error_rgb


def _panel(image: Tensor, height: int) -> Image.Image:
    picture = tensor_to_pil(image)
    width = max(1, round(picture.width * height / picture.height))
    return picture.resize((width, height), Image.Resampling.BILINEAR)


def _grid(
    rows: Sequence[Sequence[Image.Image | None]], titles: Sequence[str], captions: Sequence[Sequence[str]]
) -> Image.Image:
    """Panels in rows and columns, a title above each column and caption lines below each column."""
    font = _font()
    columns = len(titles)
    widths = [max(row[c].width for row in rows if row[c] is not None) for c in range(columns)]
    heights = [max(p.height for p in row if p is not None) for row in rows]
    caption_lines = max((len(c) for c in captions), default=0)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    widths = [
        max(width, *(int(probe.textlength(t, font=font)) for t in (titles[c], *captions[c])))
        for c, width in enumerate(widths)
    ]
    total_width = sum(widths) + GAP * (columns + 1)
    total_height = LINE + GAP + sum(heights) + GAP * len(rows) + caption_lines * LINE + GAP
    figure = Image.new("RGB", (total_width, total_height), BACKGROUND)
    draw = ImageDraw.Draw(figure)
    x = GAP
    for c in range(columns):
        draw.text((x, GAP // 2), titles[c], fill=TEXT, font=font)
        y = LINE + GAP
        for row, height in zip(rows, heights, strict=True):
            if row[c] is not None:
                figure.paste(row[c], (x, y))
            y += height + GAP
        for line in captions[c]:
            draw.text((x, y), line, fill=TEXT, font=font)
            y += LINE
        x += widths[c] + GAP
    return figure


def draw_structure_figure(report: StructureReport, *, panel_height: int = 256) -> Image.Image:
    """One pair: content | stylised | content depth | stylised depth (aligned) | depth error, with the
    metrics printed below."""
    content_depth, stylized_depth, error = depth_panels(report)
    panels = [report.content, report.stylized, content_depth, stylized_depth, error]
    titles = [
        "content",
        "stylised",
        "content depth (near = bright)",
        "stylised depth, aligned",
        "relative depth error",
    ]
    lines = metric_lines(report.metrics)
    captions = [lines[:2], lines[2:], [], [], [ERROR_LEGEND, UNDEFINED_LEGEND]]
    return _grid([[_panel(p, panel_height) for p in panels]], titles, captions)


def draw_comparison_figure(
    labelled_reports: Sequence[tuple[str, StructureReport]], *, panel_height: int = 200
) -> Image.Image:
    """One content image stylised by several models side by side: a column per model with its stylised
    image, aligned depth and depth error, the metrics below; the content and its depth in the first column."""
    if not labelled_reports:
        raise ValueError("nothing to draw: no reports")
    first = labelled_reports[0][1]
    content_depth = depth_panels(first)[0]
    rows: list[list[Image.Image | None]] = [
        [_panel(first.content, panel_height)],
        [_panel(content_depth, panel_height)],
        [None],
    ]
    titles, captions = ["content / its depth"], [["bottom row:", ERROR_LEGEND, UNDEFINED_LEGEND]]
    for label, report in labelled_reports:
        _, stylized_depth, error = depth_panels(report)
        rows[0].append(_panel(report.stylized, panel_height))
        rows[1].append(_panel(stylized_depth, panel_height))
        rows[2].append(_panel(error, panel_height))
        titles.append(label)
        captions.append(metric_lines(report.metrics))
    return _grid(rows, titles, captions)


def figure_batch(figures: Sequence[Image.Image]) -> Tensor:
    """Figures as one ``[B,3,H,W]`` batch in 0..1, each padded with white on the right and at the bottom to
    the largest (caption widths differ with the numbers printed)."""
    width, height = max(f.width for f in figures), max(f.height for f in figures)
    padded = []
    for figure in figures:
        canvas = Image.new("RGB", (width, height), BACKGROUND)
        canvas.paste(figure, (0, 0))
        padded.append(pil_to_tensor(canvas))
    return torch.cat(padded)
