"""A loss-curve chart drawn with PIL alone (no plotting library): log-scale loss against step."""

from __future__ import annotations

import io
import math
import os
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from ...depthstyle_core.atomic_write import write_bytes_atomic

SERIES_COLOURS = {
    "total": (20, 20, 20),
    "content": (31, 119, 180),
    "style": (214, 39, 40),
    "depth": (44, 160, 44),
    "tv": (148, 103, 189),
    "contrastive": (255, 127, 14),
}
BACKGROUND = (255, 255, 255)
GRID = (225, 225, 225)
AXIS = (90, 90, 90)
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 72, 110, 34, 46


def _nice_step(span: float, ticks: int) -> float:
    """A round tick spacing (1, 2 or 5 times a power of ten) giving about ``ticks`` ticks."""
    raw = max(span, 1e-12) / max(ticks, 1)
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


def _format_value(value: float) -> str:
    return f"{value:.3g}" if 1e-3 <= abs(value) < 1e4 else f"{value:.0e}"


def _log_ticks(low: float, high: float) -> list[float]:
    """Tick values for a log axis: powers of ten, or 1-2-5 multiples when the range is narrow."""
    first, last = math.floor(math.log10(low)), math.ceil(math.log10(high))
    multiples = (1, 2, 5) if last - first <= 2 else (1,)
    ticks = [m * 10.0**e for e in range(first, last + 1) for m in multiples]
    return [t for t in ticks if low <= t <= high]


def draw_loss_curve(
    records: Sequence[dict[str, float]],
    *,
    size: tuple[int, int] = (880, 480),
    title: str = "training loss (weighted terms)",
) -> Image.Image:
    """Chart the positive loss terms of ``records`` (see :class:`LossLog`) on a log scale."""
    width, height = size
    image = Image.new("RGB", size, BACKGROUND)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    left, right = MARGIN_LEFT, width - MARGIN_RIGHT
    top, bottom = MARGIN_TOP, height - MARGIN_BOTTOM
    draw.text((left, 10), title, fill=AXIS, font=font)
    series = {
        term: [(r["step"], r[term]) for r in records if r.get(term, 0) > 0 and math.isfinite(r[term])]
        for term in SERIES_COLOURS
    }
    series = {term: points for term, points in series.items() if points}
    draw.rectangle((left, top, right, bottom), outline=AXIS)
    if not series:
        draw.text((left + 10, top + 10), "no loss values yet", fill=AXIS, font=font)
        return image
    steps = [s for points in series.values() for s, _ in points]
    values = [v for points in series.values() for _, v in points]
    x_low, x_high = min(steps), max(steps)
    if x_high == x_low:
        x_low, x_high = x_low - 1, x_high + 1
    y_low, y_high = math.log10(min(values)), math.log10(max(values))
    pad = max(0.05 * (y_high - y_low), 0.05)
    y_low, y_high = y_low - pad, y_high + pad

    def to_xy(step: float, value: float) -> tuple[float, float]:
        x = left + (step - x_low) / (x_high - x_low) * (right - left)
        y = bottom - (math.log10(value) - y_low) / (y_high - y_low) * (bottom - top)
        return x, y

    for tick in _log_ticks(10**y_low, 10**y_high):
        _, y = to_xy(x_low, tick)
        draw.line((left + 1, y, right - 1, y), fill=GRID)
        label = _format_value(tick)
        draw.text((left - 6 - draw.textlength(label, font=font), y - 6), label, fill=AXIS, font=font)
    spacing = _nice_step(x_high - x_low, 6)
    tick = math.ceil(x_low / spacing) * spacing
    while tick <= x_high:
        x, _ = to_xy(tick, 10**y_low)
        draw.line((x, top + 1, x, bottom - 1), fill=GRID)
        label = f"{tick:g}"
        draw.text((x - draw.textlength(label, font=font) / 2, bottom + 6), label, fill=AXIS, font=font)
        tick += spacing
    draw.text(((left + right) / 2 - 12, bottom + 24), "step", fill=AXIS, font=font)
    for row, (term, points) in enumerate(series.items()):
        colour = SERIES_COLOURS[term]
        line_width = 3 if term == "total" else 2
        xy = [to_xy(s, v) for s, v in points]
        if len(xy) == 1:
            x, y = xy[0]
            draw.ellipse((x - 3, y - 3, x + 3, y + 3), fill=colour)
        else:
            draw.line(xy, fill=colour, width=line_width, joint="curve")
        legend_y = top + 8 + 18 * row
        draw.line((right + 12, legend_y + 6, right + 34, legend_y + 6), fill=colour, width=line_width)
        draw.text((right + 40, legend_y), term, fill=colour, font=font)
    return image


def write_loss_curve(records: Sequence[dict[str, float]], path: str | os.PathLike) -> Path:
    """Draw the chart of ``records`` and write it to ``path`` as PNG, atomically."""
    buffer = io.BytesIO()
    draw_loss_curve(records).save(buffer, format="PNG")
    return write_bytes_atomic(path, buffer.getvalue())
