"""Stylisation throughput and memory.

``speed``: megapixels per second of ``stylize`` against a plain eager fp32 forward of the same
weights (pytorch/examples style: F.conv2d + F.instance_norm, nothing else), in the same process,
interleaved, best of N. ``memory``: peak resident memory of this process while stylising one large
image with tiling (run it in a fresh process: the peak covers the whole process life).

Run: python bench/stylize_bench.py speed [--sizes 512 1024] [--repeats 3]
     python bench/stylize_bench.py memory [--size 4096] [--tile 1024]
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from common import best_seconds_interleaved, command_and_machine

from depthstyle.depthstyle_core.models.transformer_net import TransformerNet
from depthstyle.depthstyle_core.stylize import stylize

RESULTS = Path(__file__).parent / "results"


def plain_forward(state: dict[str, torch.Tensor], x01: torch.Tensor) -> torch.Tensor:
    """The reference: the community TransformerNet as plain functional calls (sides multiple of 4)."""

    def conv(h, name, stride=1):
        weight = state[f"{name}.conv2d.weight"]
        pad = weight.shape[-1] // 2
        h = F.pad(h, (pad, pad, pad, pad), mode="reflect")
        return F.conv2d(h, weight, state[f"{name}.conv2d.bias"], stride=stride)

    def norm(h, name):
        return F.instance_norm(h, weight=state[f"{name}.weight"], bias=state[f"{name}.bias"])

    h = x01 * 255.0
    h = F.relu(norm(conv(h, "conv1"), "in1"))
    h = F.relu(norm(conv(h, "conv2", 2), "in2"))
    h = F.relu(norm(conv(h, "conv3", 2), "in3"))
    for k in range(1, 6):
        r = F.relu(norm(conv(h, f"res{k}.conv1"), f"res{k}.in1"))
        h = h + norm(conv(r, f"res{k}.conv2"), f"res{k}.in2")
    h = F.relu(norm(conv(F.interpolate(h, scale_factor=2, mode="nearest"), "deconv1"), "in4"))
    h = F.relu(norm(conv(F.interpolate(h, scale_factor=2, mode="nearest"), "deconv2"), "in5"))
    return (conv(h, "deconv3") / 255.0).clamp(0, 1)


def speed(args: argparse.Namespace) -> dict:
    torch.manual_seed(0)
    net = TransformerNet().eval()
    state = {k: v.detach() for k, v in net.state_dict().items()}
    rows = []
    with torch.inference_mode():
        for side in args.sizes:
            image = torch.rand(1, 3, side, side)
            difference = float((stylize(net, image) - plain_forward(state, image)).abs().max())
            seconds = best_seconds_interleaved(
                {
                    "stylize": lambda image=image: stylize(net, image),
                    "plain": lambda image=image: plain_forward(state, image),
                },
                args.repeats,
            )
            ours, plain = seconds["stylize"], seconds["plain"]
            megapixels = side * side / 1e6
            rows.append(
                {
                    "size": f"{side}x{side}",
                    "stylize_mp_per_s": megapixels / ours,
                    "plain_eager_mp_per_s": megapixels / plain,
                    "ratio_stylize_over_plain": plain / ours,
                    "max_abs_difference": difference,
                }
            )
            print(
                f"{side}x{side}: stylize {megapixels / ours:.3f} MP/s, plain {megapixels / plain:.3f} MP/s, "
                f"ratio {plain / ours:.3f}, max |diff| {difference:.2e}"
            )
    return {"benchmark": "stylize speed, CPU fp32", **command_and_machine(), "rows": rows}


def memory(args: argparse.Namespace) -> dict:
    torch.manual_seed(0)
    net = TransformerNet().eval()
    image = torch.rand(1, 3, args.size, args.size)
    start = time.perf_counter()
    with torch.inference_mode():
        out = stylize(net, image, tile_size=args.tile)
    seconds = time.perf_counter() - start
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9
    print(
        f"{args.size}x{args.size} tile {args.tile}: peak RSS {peak_gb:.2f} GB, {seconds:.1f} s, "
        f"output {tuple(out.shape)}"
    )
    return {
        "benchmark": "stylize peak memory, CPU fp32, tiled",
        **command_and_machine(),
        "size": f"{args.size}x{args.size}",
        "tile": args.tile,
        "peak_rss_gb": peak_gb,
        "seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    modes = parser.add_subparsers(dest="mode", required=True)
    speed_parser = modes.add_parser("speed")
    speed_parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    speed_parser.add_argument("--repeats", type=int, default=5)
    memory_parser = modes.add_parser("memory")
    memory_parser.add_argument("--size", type=int, default=4096)
    memory_parser.add_argument("--tile", type=int, default=1024)
    args = parser.parse_args()
    result = speed(args) if args.mode == "speed" else memory(args)
    path = RESULTS / f"stylize_{args.mode}_cpu.json"
    RESULTS.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {path}")


if __name__ == "__main__":
    main()
