"""How the any-painting network's strength moves from the photo to the painting, with the real weights.

For strengths 0, 1/8, ..., 1 it measures the mean distance of the result to the photo (in 8-bit levels)
for the strength we ship (signals by ``strength``, pixels by ``sqrt(strength)``) and for the alternatives
it was chosen against: the same amount for both, signals alone, pixels alone (a cross-fade). It also
records the authors' own feature-space ``alpha`` and how saturated it gets. Writes the numbers to
``bench/results/any_style_strength.{json,md}`` and the README's pictures to ``docs/``: the example pair
with its result, and a strip of strengths.

Run: python bench/any_style_strength.py [--photo P] [--painting S] [--width 768]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import torch.nn.functional as F
from common import command_and_machine
from PIL import Image, ImageDraw

from depthstyle.depthstyle_core.any_style.model_file import load_any_style_model
from depthstyle.depthstyle_core.any_style.signals import painting_signals
from depthstyle.depthstyle_core.any_style.strength import pixel_amount
from depthstyle.depthstyle_core.any_style.stylize import stylize_any
from depthstyle.depthstyle_core.images import load_image, tensor_to_pil
from depthstyle.depthstyle_core.models.microast import MicroAST, instance_normalize
from depthstyle.depthstyle_core.models.padding import pad_to_valid

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT.parent / "shared" / "weights" / "microast" / "examples"
RESULTS = Path(__file__).parent / "results"
STRENGTHS = [k / 8 for k in range(9)]
STRIP = [0.0, 0.25, 0.5, 0.75, 1.0]


def fitted(image: torch.Tensor, width: int) -> torch.Tensor:
    height = round(image.shape[-2] * width / image.shape[-1])
    return F.interpolate(image, size=(height, width), mode="bilinear", antialias=True, align_corners=False)


def network(model: MicroAST, photo: torch.Tensor, painting: torch.Tensor, amount: float) -> torch.Tensor:
    """The network with the signals moved ``amount`` of the way from the photo's own to the painting's."""
    own = painting_signals(model, photo, 512, photo.device)
    signals = own.lerp(painting_signals(model, painting, 512, photo.device), amount)
    features = model.content_features(pad_to_valid(photo))
    return model.decode(features, signals)[..., : photo.shape[-2], : photo.shape[-1]].clamp(0, 1)


def authors_alpha(model: MicroAST, photo: torch.Tensor, painting: torch.Tensor, alpha: float) -> torch.Tensor:
    """The authors' alpha: ``alpha * adain + (1 - alpha) * features`` at both AdaIN points."""
    signals = painting_signals(model, painting, 512, photo.device)
    x = model.content_features(pad_to_valid(photo))
    for index, stage in enumerate(signals.stages):
        adain = instance_normalize(x) * stage.std + stage.mean
        block = model.decoder.dec1 if index == 0 else model.decoder.dec2
        x = block(alpha * adain + (1 - alpha) * x, stage.weight, stage.bias)
    return model.head(x)[..., : photo.shape[-2], : photo.shape[-1]]


def levels(a: torch.Tensor, b: torch.Tensor) -> float:
    return round(255 * float((a - b).abs().mean()), 1)


def distances(model: MicroAST, photo: torch.Tensor, painting: torch.Tensor) -> dict[str, list[float]]:
    rows: dict[str, list[float]] = {"shipped": [], "same amount": [], "signals only": [], "pixels only": []}
    full = network(model, photo, painting, 1.0)
    for s in STRENGTHS:
        signal_result = network(model, photo, painting, s)
        rows["shipped"].append(levels(stylize_any(model, photo, painting, strength=s), photo))
        rows["same amount"].append(levels(torch.lerp(photo, signal_result, s), photo))
        rows["signals only"].append(levels(signal_result, photo))
        rows["pixels only"].append(levels(torch.lerp(photo, full, s), photo))
    return rows


def to_height(image: torch.Tensor, height: int) -> torch.Tensor:
    width = round(image.shape[-1] * height / image.shape[-2])
    return F.interpolate(image, size=(height, width), mode="bilinear", antialias=True, align_corners=False)


def labelled_strip(images: list[torch.Tensor], labels: list[str]) -> Image.Image:
    """The images side by side (same height), each with its label above it."""
    tiles = [tensor_to_pil(image) for image in images]
    height = tiles[0].size[1]
    strip = Image.new("RGB", (sum(t.size[0] for t in tiles) + 6 * (len(tiles) - 1), height + 22), "white")
    draw = ImageDraw.Draw(strip)
    left = 0
    for tile, label in zip(tiles, labels, strict=True):
        strip.paste(tile, (left, 22))
        draw.text((left + 4, 5), label, fill="black")
        left += tile.size[0] + 6
    return strip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--photo", type=Path, default=EXAMPLES / "content_harbour.jpg")
    parser.add_argument("--painting", type=Path, default=EXAMPLES / "style_abstract.jpg")
    parser.add_argument("--width", type=int, default=768, help="width the photo is measured and shown at")
    args = parser.parse_args()
    model = load_any_style_model()
    photo = fitted(load_image(args.photo), args.width)
    painting = load_image(args.painting)
    with torch.inference_mode():
        rows = distances(model, photo, painting)
        alpha = {a: authors_alpha(model, photo, painting, a) for a in (0.0, 0.25, 0.5, 0.75, 1.0)}
        strip_images = [stylize_any(model, to_height(photo, 190), painting, strength=s) for s in STRIP]
        result = stylize_any(model, photo, painting)
    report = {
        "benchmark": "distance to the photo (mean |difference|, 8-bit levels) as strength goes 0..1",
        **command_and_machine(),
        "photo": args.photo.name,
        "painting": args.painting.name,
        "size": f"{photo.shape[-1]}x{photo.shape[-2]}",
        "strengths": STRENGTHS,
        "distances": rows,
        "pixel_amounts": [round(float(pixel_amount(s)), 3) for s in STRENGTHS],
        "authors_alpha": {
            str(a): {"max_value": round(float(x.max()), 2), "distance": levels(x.clamp(0, 1), photo)}
            for a, x in alpha.items()
        },
    }
    lines = [
        "# Any-painting network: from the photo to the painting",
        "",
        f"```\n{report['command']}\n```",
        "",
        f"{report['photo']} at {report['size']} with {report['painting']} (style size 512), built-in weights."
        " "
        "Mean distance to the photo in 8-bit levels, per strength:",
        "",
        "| strength | " + " | ".join(f"{s:g}" for s in STRENGTHS) + " |",
        "|---|" + "---|" * len(STRENGTHS),
    ]
    lines += [f"| {name} | " + " | ".join(f"{v:.1f}" for v in values) + " |" for name, values in rows.items()]
    lines += [
        "",
        "shipped: signals move by strength, pixels by sqrt(strength); same amount: both by strength; "
        "signals only: never reaches the photo; pixels only: a cross-fade of two pictures.",
        "",
        "The authors' feature-space alpha, for comparison (largest value before clamping, distance):",
        "",
        "| alpha | " + " | ".join(report["authors_alpha"]) + " |",
        "|---|" + "---|" * len(report["authors_alpha"]),
        "| max value | " + " | ".join(str(v["max_value"]) for v in report["authors_alpha"].values()) + " |",
        "| distance | " + " | ".join(str(v["distance"]) for v in report["authors_alpha"].values()) + " |",
    ]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "any_style_strength.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / "any_style_strength.md").write_text("\n".join(lines) + "\n")
    docs = ROOT / "docs"
    labelled_strip(strip_images, [f"strength {s:g}" for s in STRIP]).save(
        docs / "any_style_strength.jpg", quality=88
    )
    shown = [to_height(image, 300) for image in (photo, painting, result)]
    labelled_strip(shown, ["photo", "painting", "result"]).save(docs / "any_painting.jpg", quality=90)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
