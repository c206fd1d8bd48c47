"""Flicker of stylised video: ``frames="independent"`` against ``frames="shared"`` on a synthetic camera pan,
for a trained style network and for the built-in any-painting network.

Frames are cut from one large photo, each shifted by a known number of pixels from the one before (a
camera pan over a still scene), and stylised as one batch in each mode. Flicker is the mean absolute
difference of consecutive stylised frames over their overlap, aligned by the known shift (0..1 scale,
lower is better; the input frames score exactly 0). What remains with shared statistics is the frame
border, where the network sees different surroundings.

Without ``--photo`` the photo is synthetic (a colour pink-noise field with a few hard-edged shapes);
without ``--model`` the style network has random weights that make it paint with full contrast. The
any-painting network uses its built-in weights and ``--style`` (default: the example painting in
``shared/weights/microast/examples``).

Run: python bench/flicker_bench.py [--frames 16] [--size 256] [--shift 16] [--photo P] [--model M.safetensors]
                                   [--style PAINTING]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from depthstyle.depthstyle_core.models.transformer_net import TransformerNet

RESULTS = Path(__file__).parent / "results"
EXAMPLE_PAINTING = Path(__file__).resolve().parents[2] / "shared/weights/microast/examples/style_abstract.jpg"
NETWORKS = {"trained": "trained style network", "any": "built-in any-painting network"}

StylizeFrames = Callable[[torch.Tensor, str], torch.Tensor]
"""``run(frames, mode)``: the frames stylised with ``frames=mode`` ("independent" or "shared")."""


def synthetic_photo(height: int, width: int, seed: int = 0) -> torch.Tensor:
    """``[1,3,H,W]`` in 0..1 with photo-like statistics: detail at every scale (amplitude proportional to
    the scale, as in natural images) plus discs with hard edges."""
    gen = torch.Generator().manual_seed(seed)
    field = torch.zeros(1, 3, height, width)
    cell = 4
    while cell <= max(height, width):
        coarse = torch.randn(1, 3, height // cell + 2, width // cell + 2, generator=gen)
        field += cell * F.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=False)
        cell *= 2
    field = 0.5 + 0.18 * (field - field.mean()) / field.std()
    y, x = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    for _ in range(12):
        cy, cx = (torch.rand(2, generator=gen) * torch.tensor([height, width])).tolist()
        radius = float(torch.rand(1, generator=gen)) * min(height, width) / 6 + 6
        colour = torch.rand(3, 1, 1, generator=gen)
        inside = ((y - cy) ** 2 + (x - cx) ** 2) < radius**2
        field[0] = torch.where(inside, colour, field[0])
    return field.clamp(0, 1)


def pan_frames(photo: torch.Tensor, count: int, size: int, shift: int) -> torch.Tensor:
    """``count`` square crops of side ``size`` from ``[1,3,H,W]``, each ``shift`` pixels right of the last."""
    needed = size + (count - 1) * shift
    if photo.shape[-2] < size or photo.shape[-1] < needed:
        raise ValueError(f"the photo must be at least {size} x {needed} pixels (H x W) for this pan")
    top = (photo.shape[-2] - size) // 2
    return torch.cat([photo[..., top : top + size, k * shift : k * shift + size] for k in range(count)])


def flicker(frames: torch.Tensor, shift: int) -> float:
    """Mean absolute difference of consecutive frames ``[N,3,H,W]`` over their overlap: frame k+1 at
    column c shows what frame k shows at column c + shift."""
    earlier = frames[:-1, ..., shift:]
    later = frames[1:, ..., : frames.shape[-1] - shift]
    return float((earlier - later).abs().mean())


def random_style_net(seed: int = 0) -> TransformerNet:
    """A random-weight style network that paints with full contrast (a freshly initialised one outputs
    almost the same value everywhere, which would hide any flicker): random norm scales and shifts, and
    the last layer set so that the output spans about 0..1."""
    torch.manual_seed(seed)
    net = TransformerNet().eval()
    with torch.no_grad():
        for name, param in net.named_parameters():
            if param.ndim == 1 and not name.endswith("conv2d.bias"):
                param.copy_((1.0 if name.endswith("weight") else 0.0) + 0.3 * torch.randn_like(param))
        probe = net(synthetic_photo(64, 64, seed=seed + 1))
        gain = 0.25 / probe.std().item()
        net.deconv3.conv2d.weight.mul_(gain)
        net.deconv3.conv2d.bias.mul_(gain).add_(0.5 * 255 - probe.mean().item() * gain * 255)
    return net


def measure(run: StylizeFrames, frames: torch.Tensor, shift: int) -> dict:
    """Flicker of the frames themselves and of both stylisation modes of ``run``, with their wall time."""
    result = {"input_flicker": flicker(frames, shift)}
    with torch.inference_mode():
        for mode in ("independent", "shared"):
            start = time.perf_counter()
            styled = run(frames, mode)
            result[f"{mode}_seconds"] = time.perf_counter() - start
            result[f"{mode}_flicker"] = flicker(styled, shift)
    result["independent_over_shared"] = result["independent_flicker"] / result["shared_flicker"]
    return result


def stylizers(model: str | None, style: Path, chunk_size: int) -> dict[str, StylizeFrames]:
    """The networks to compare, as ``run(frames, mode)``."""
    from depthstyle.depthstyle_core.any_style.model_file import load_any_style_model
    from depthstyle.depthstyle_core.any_style.stylize import stylize_any
    from depthstyle.depthstyle_core.images import load_image
    from depthstyle.depthstyle_core.style_model import load_style_model
    from depthstyle.depthstyle_core.stylize import stylize

    net = load_style_model(model)[0] if model else random_style_net()
    any_model, painting = load_any_style_model(), load_image(style)
    return {
        "trained": lambda frames, mode: stylize(net, frames, frames=mode, chunk_size=chunk_size),
        "any": lambda frames, mode: stylize_any(
            any_model, frames, painting, frames=mode, chunk_size=chunk_size
        ),
    }


def main() -> None:
    from common import command_and_machine

    from depthstyle.depthstyle_core.images import load_image

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=256, help="side of each square frame")
    parser.add_argument("--shift", type=int, default=16, help="pan per frame in pixels")
    parser.add_argument("--chunk-size", type=int, default=4)
    parser.add_argument("--photo", help="an image at least size x (size + (frames-1) x shift)")
    parser.add_argument("--model", help="a style model (.safetensors); default: random weights")
    parser.add_argument(
        "--style", type=Path, default=EXAMPLE_PAINTING, help="painting for the any-painting net"
    )
    parser.add_argument("--tag", default="cpu")
    args = parser.parse_args()
    width = args.size + (args.frames - 1) * args.shift
    photo = load_image(args.photo) if args.photo else synthetic_photo(args.size + 64, width + 64)
    frames = pan_frames(photo, args.frames, args.size, args.shift)
    results = {
        name: measure(run, frames, args.shift)
        for name, run in stylizers(args.model, args.style, args.chunk_size).items()
    }
    report = {
        "benchmark": "flicker on a synthetic pan: mean |difference| of consecutive frames over the overlap",
        **command_and_machine(),
        "frames": args.frames,
        "frame_size": args.size,
        "shift_px": args.shift,
        "photo": args.photo or "synthetic",
        "model": args.model or "random weights",
        "style": args.style.name,
        "networks": results,
    }
    lines = [
        "# Flicker: independent vs shared statistics",
        "",
        f"```\n{report['command']}\n```",
        "",
        f"{args.frames} frames of {args.size}x{args.size} px, pan {args.shift} px per frame, "
        f"photo: {report['photo']}; trained network: {report['model']}; any-painting network: built-in "
        f"weights with {report['style']}; torch {report['torch']}, {report['threads']} threads.",
        "",
        "| network | frames | flicker (0..1, lower is better) | in 8-bit levels | seconds |",
        "|---|---|---|---|---|",
        f"| | input | {results['trained']['input_flicker']:.5f} | "
        f"{255 * results['trained']['input_flicker']:.2f} | |",
    ]
    for name, result in results.items():
        for mode in ("independent", "shared"):
            value = result[f"{mode}_flicker"]
            lines.append(
                f"| {NETWORKS[name]} | {mode} | {value:.5f} | {255 * value:.2f} | "
                f"{result[f'{mode}_seconds']:.1f} |"
            )
    lines.append("")
    for name, result in results.items():
        lines.append(
            f"{NETWORKS[name]}: independent / shared = **{result['independent_over_shared']:.1f}x**."
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = RESULTS / f"flicker_{args.tag}"
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"written to {stem}.json and .md")


if __name__ == "__main__":
    main()
