"""The built-in any-painting network: throughput and memory on this machine.

``speed``: images per second of ``stylize_any`` (the whole call: the painting's signals, the photo's
pass, the blend) against a plain eager forward of the same weights written here with torch.nn.functional
as the authors' code runs it (a reflection pad before every convolution, AdaIN with the unbiased
variance, contiguous tensors, fp32), on the same painting (resized to 512 px on its long side), in the
same process, interleaved, best of N. ``memory``: peak resident memory of a fresh process that stylises
one image of the given size, whole or in tiles (each size runs in a process of its own, since the peak
covers a process's whole life).

Run: python bench/any_style_bench.py speed [--sizes 512x512 1024x1024 3840x2160] [--repeats 3]
     python bench/any_style_bench.py memory [--sizes 3840x2160:0 7680x4320:1024]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from common import best_seconds_interleaved, command_and_machine

from depthstyle.depthstyle_core.any_style.model_file import load_any_style_model
from depthstyle.depthstyle_core.any_style.stylize import stylize_any
from depthstyle.depthstyle_core.images import load_image

RESULTS = Path(__file__).parent / "results"
PAINTING = Path(__file__).resolve().parents[1] / "tests" / "data" / "any_style" / "style.png"
EPS = 1e-5


def plain_forward(state: dict[str, torch.Tensor], content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    """The reference: the authors' forward pass (alpha 1) as plain functional calls (sides multiple of 4)."""

    def conv(h, name, stride=1, groups=1):
        weight = state[f"{name}.conv_layer.weight"]
        pad = weight.shape[-1] // 2
        h = F.pad(h, (pad, pad, pad, pad), mode="reflect")
        return F.conv2d(h, weight, state[f"{name}.conv_layer.bias"], stride=stride, groups=groups)

    def residual(h, name, weight=None, bias=None):
        if weight is None:
            return h + conv(F.relu(conv(h, f"{name}.conv1")), f"{name}.conv2")
        hidden = F.relu(weight * conv(h, f"{name}.conv1") + bias * h)
        return h + weight * conv(hidden, f"{name}.conv2") + bias * hidden

    def encoder(prefix, x):
        h = F.relu(conv(x, f"{prefix}.enc1.0"))
        h = F.relu(conv(h, f"{prefix}.enc1.2", stride=2, groups=16))
        h = F.relu(conv(h, f"{prefix}.enc1.4"))
        h = F.relu(conv(h, f"{prefix}.enc1.6", stride=2, groups=32))
        h = F.relu(conv(h, f"{prefix}.enc1.8"))
        first = residual(h, f"{prefix}.enc1.10")
        return first, residual(first, f"{prefix}.enc2.0")

    def mean_std(h):
        var, mean = torch.var_mean(h, dim=(2, 3), keepdim=True)
        return mean, (var + EPS).sqrt()

    def adain(h, target):
        mean, std = mean_std(h)
        target_mean, target_std = mean_std(target)
        return (h - mean) / std * target_std + target_mean

    def modulation(branch, features):
        return conv(features, f"modulator.{branch}.0", groups=64).mean(dim=(2, 3), keepdim=True)

    style_first, style_second = encoder("style_encoder", style)
    _, features = encoder("content_encoder", content)
    h = residual(
        adain(features, style_second),
        "decoder.dec1",
        modulation("weight2", style_second),
        modulation("bias2", style_second),
    )
    h = residual(
        adain(h, style_first),
        "decoder.dec2",
        modulation("weight1", style_first),
        modulation("bias1", style_first),
    )
    h = F.interpolate(h, scale_factor=2, mode="bilinear", align_corners=False)
    h = F.relu(conv(F.relu(conv(h, "decoder.dec3.1", groups=32)), "decoder.dec3.3"))
    h = F.interpolate(h, scale_factor=2, mode="bilinear", align_corners=False)
    h = F.relu(conv(F.relu(conv(h, "decoder.dec3.6", groups=16)), "decoder.dec3.8"))
    return conv(h, "decoder.dec3.10").clamp(0, 1)


def size_arg(text: str) -> tuple[int, int]:
    width, height = text.lower().split("x")
    return int(width), int(height)


def speed(args: argparse.Namespace) -> dict:
    model = load_any_style_model()
    state = {k: v.detach() for k, v in model.state_dict().items()}
    painting = load_image(PAINTING)
    scale = 512 / max(painting.shape[-2:])
    style = F.interpolate(
        painting, scale_factor=scale, mode="bicubic", align_corners=False, recompute_scale_factor=False
    ).clamp(0, 1)
    rows = []
    with torch.inference_mode():
        for width, height in args.sizes:
            photo = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(width))
            best = best_seconds_interleaved(
                {
                    "plain": lambda photo=photo: plain_forward(state, photo, style),
                    "ours": lambda photo=photo: stylize_any(model, photo, style, style_size=0),
                },
                repeats=args.repeats,
            )
            difference = (
                stylize_any(model, photo, style, style_size=0) - plain_forward(state, photo, style)
            ).abs()
            rows.append(
                {
                    "size": f"{width}x{height}",
                    "megapixels": width * height / 1e6,
                    "plain_images_per_s": 1 / best["plain"],
                    "ours_images_per_s": 1 / best["ours"],
                    "ratio": best["plain"] / best["ours"],
                    "max_abs_difference": float(difference.max()),
                }
            )
            print(rows[-1], flush=True)
    return {"benchmark": "stylize_any speed, CPU fp32, images/s", **command_and_machine(), "rows": rows}


def memory_once(width: int, height: int, tile: int) -> dict:
    """Stylise one random image in this process and report its peak resident memory."""
    model = load_any_style_model()
    painting = load_image(PAINTING)
    photo = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(1))
    start = time.perf_counter()
    with torch.inference_mode():
        stylize_any(model, photo, painting, tile=tile)
    return {
        "size": f"{width}x{height}",
        "tile": tile,
        "seconds": time.perf_counter() - start,
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9,
        "image_gb": photo.numel() * 4 / 1e9,
    }


def memory(args: argparse.Namespace) -> dict:
    rows = []
    for item in args.sizes:
        size, tile = item.split(":")
        width, height = size_arg(size)
        done = subprocess.run(
            [sys.executable, __file__, "memory-once", str(width), str(height), tile],
            capture_output=True,
            text=True,
            check=True,
        )
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
    return {"benchmark": "stylize_any peak memory, CPU fp32", **command_and_machine(), "rows": rows}


def write(report: dict, stem: str, lines: list[str]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    fast = commands.add_parser("speed")
    fast.add_argument("--sizes", type=size_arg, nargs="+", default=[(512, 512), (1024, 1024), (3840, 2160)])
    fast.add_argument("--repeats", type=int, default=3)
    fast.add_argument("--tag", default="cpu")
    peak = commands.add_parser("memory")
    peak.add_argument("--sizes", nargs="+", default=["3840x2160:0", "7680x4320:1024"], help="WxH:TILE")
    peak.add_argument("--tag", default="cpu")
    once = commands.add_parser("memory-once")
    once.add_argument("width", type=int)
    once.add_argument("height", type=int)
    once.add_argument("tile", type=int)
    args = parser.parse_args()
    if args.command == "memory-once":
        print(json.dumps(memory_once(args.width, args.height, args.tile)))
    elif args.command == "speed":
        report = speed(args)
        lines = [
            "# Any-painting network: speed on the CPU (fp32)",
            "",
            f"```\n{report['command']}\n```",
            "",
            f"torch {report['torch']}, {report['threads']} threads, {report['machine']}. `plain` is the "
            "authors' forward pass written with torch.nn.functional; `ours` is the whole `stylize_any` call "
            "(painting signals, the photo's pass in channels-last, blend).",
            "",
            "| size | plain images/s | ours images/s | ours / plain | max difference |",
            "|---|---|---|---|---|",
        ]
        for row in report["rows"]:
            lines.append(
                f"| {row['size']} | {row['plain_images_per_s']:.3f} | {row['ours_images_per_s']:.3f} | "
                f"**{row['ratio']:.2f}** | {row['max_abs_difference']:.1e} |"
            )
        write(report, f"any_style_{args.tag}", lines)
    else:
        report = memory(args)
        lines = [
            "# Any-painting network: peak memory on the CPU (fp32)",
            "",
            f"```\n{report['command']}\n```",
            "",
            "Peak resident memory of a fresh process (torch, the model, the input and output images "
            "included) that stylises one random image; tile 0 = the whole image in one pass.",
            "",
            "| size | tile | peak RSS GB | image alone GB | seconds |",
            "|---|---|---|---|---|",
        ]
        for row in report["rows"]:
            lines.append(
                f"| {row['size']} | {row['tile']} | {row['peak_rss_gb']:.2f} | {row['image_gb']:.2f} | "
                f"{row['seconds']:.1f} |"
            )
        write(report, f"any_style_memory_{args.tag}", lines)


if __name__ == "__main__":
    main()
