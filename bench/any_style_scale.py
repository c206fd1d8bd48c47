"""Brush size of the any-painting network on a big photo: ``scale`` 1, 0.5 and 0.25, with the real weights.

The photo is painted at its full size with each scale. For 0.5 and 0.25 the result painted on the
smaller photo comes back to full size in two ways, measured with the structure report against the photo
(edge F1 within 2 px, SSIM of the brightness): a plain bicubic enlargement, and the guided enlargement
``stylize_any`` uses (:mod:`depthstyle.depthstyle_core.upsample`). Writes the numbers to
``bench/results/any_style_scale.{json,md}`` and the README's strip to ``docs/any_style_scale.jpg``: the
same part of the picture from each scale, side by side at full size (1:1 pixels).

Run: python bench/any_style_scale.py --photo PHOTO --painting PAINTING [--crop X Y W H]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from common import command_and_machine
from PIL import Image, ImageDraw

from depthstyle.depthstyle_core.any_style.model_file import load_any_style_model
from depthstyle.depthstyle_core.any_style.stylize import stylize_any
from depthstyle.depthstyle_core.images import load_image, tensor_to_pil
from depthstyle.depthstyle_core.report.edges import detect_edges, edge_agreement
from depthstyle.depthstyle_core.report.ssim import ssim
from depthstyle.depthstyle_core.stylize import luminance, resize_images, scaled_size
from depthstyle.depthstyle_core.upsample import guided_enlarge

ROOT = Path(__file__).resolve().parents[1]
SCALES = (1.0, 0.5, 0.25)


def structure(photo: torch.Tensor, result: torch.Tensor) -> dict[str, float]:
    edges = edge_agreement(detect_edges(luminance(photo))[0], detect_edges(luminance(result))[0], 2)
    return {
        "edge_f1": round(edges.f1, 3),
        "ssim": round(float(ssim(luminance(photo), luminance(result))[0]), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--photo", type=Path, required=True)
    parser.add_argument("--painting", type=Path, required=True)
    parser.add_argument(
        "--crop", type=int, nargs=4, default=(1500, 880, 600, 420), metavar=("X", "Y", "W", "H")
    )
    args = parser.parse_args()
    photo, painting = load_image(args.photo), load_image(args.painting)
    model = load_any_style_model()
    rows, panels = [], []
    with torch.inference_mode():
        for scale in SCALES:
            result = stylize_any(model, photo, painting, scale=scale)
            rows.append(
                {"scale": scale, "enlargement": "guided" if scale < 1 else "none", **structure(photo, result)}
            )
            if scale < 1:
                small_photo = resize_images(photo, scaled_size(*photo.shape[-2:], scale)).clamp(0, 1)
                small = stylize_any(model, small_photo, painting)
                assert torch.equal(guided_enlarge(small, small_photo, photo), result)
                rows.append(
                    {
                        "scale": scale,
                        "enlargement": "bicubic",
                        **structure(photo, resize_images(small, tuple(photo.shape[-2:])).clamp(0, 1)),
                    }
                )
            x, y, w, h = args.crop
            panels.append((scale, tensor_to_pil(result[0, :, y : y + h, x : x + w])))
            print(rows[-1], flush=True)
    strip = Image.new(
        "RGB", (sum(p.width for _, p in panels) + 8 * (len(panels) - 1), panels[0][1].height + 24), "white"
    )
    draw = ImageDraw.Draw(strip)
    left = 0
    for scale, panel in panels:
        strip.paste(panel, (left, 24))
        draw.text((left + 4, 4), f"scale {scale:g}", fill=(30, 30, 30))
        left += panel.width + 8
    strip.save(ROOT / "docs" / "any_style_scale.jpg", quality=90)
    result = {"environment": command_and_machine(), "photo_size": list(photo.shape[-2:]), "rows": rows}
    (ROOT / "bench" / "results" / "any_style_scale.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# Brush size of the any-painting network",
        "",
        "```",
        result["environment"]["command"],
        "```",
        "",
    ]
    lines += [f"Photo {photo.shape[-1]}x{photo.shape[-2]}, structure report against the photo.", ""]
    lines += ["| scale | back to full size | edge F1 | SSIM |", "|---|---|---|---|"]
    lines += [f"| {r['scale']:g} | {r['enlargement']} | {r['edge_f1']} | {r['ssim']} |" for r in rows]
    (ROOT / "bench" / "results" / "any_style_scale.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
