"""Per-image optimisation: steps per second of ``optimize_style`` against a plain PyTorch loop, peak
memory and the wall time of the default 512 px run.

Both loops optimise the pixels of a 512x512 photo with Adam, through the same VGG-16 (content relu4_2,
style relu1_1..relu5_1 Gram matrices) and the same Depth Anything V2 Small (scale-and-shift invariant
depth loss at a 252 px shorter side), plus total variation. The reference is written the most direct
way: targets once, then forward, loss, backward, step, clamp. The networks have random weights and the
real architectures (speed does not depend on the values). The two loops take turns (best of several),
so a slow spell of the machine falls on both. Steps per second are timed from the end of the first
step to the end of the last, i.e. without each loop's one-off set-up. On a CPU with native bf16 a second
row runs ours with precision bf16 (opt-in on the CPU) against the same fp32 plain loop.

    python bench/optimize_bench.py                 # ratio, then the default run in a fresh process
    python bench/optimize_bench.py --quick         # tiny sizes, to check the script
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
from common import best_step_seconds, command_and_machine, random_depth_anything

from depthstyle.depthstyle_core.depth import depth_for_loss
from depthstyle.depthstyle_core.losses import gram_matrix, normalize_depth_ssi
from depthstyle.depthstyle_core.models.depth_anything import DepthAnythingConfig
from depthstyle.depthstyle_core.models.vgg import VGG16Features
from depthstyle.trainers import OptimizeConfig, optimize_style
from depthstyle.trainers.optimize.config import GATYS_CONTENT_LAYER, GATYS_STYLE_LAYERS
from depthstyle.trainers.run.loss_networks import cpu_has_native_bf16

RESULTS = Path(__file__).parent / "results"


def plain_reference(content, style, vgg, depth, steps: int, resolution: int, marks: list[float]) -> None:
    """Gatys et al. with the depth loss, written directly: Adam on the pixels, no tricks."""
    layers = (*GATYS_STYLE_LAYERS, GATYS_CONTENT_LAYER)
    with torch.no_grad():
        content_target = vgg(content, taps=[GATYS_CONTENT_LAYER])[GATYS_CONTENT_LAYER]
        style_features = vgg(style, taps=GATYS_STYLE_LAYERS)
        grams = {layer: gram_matrix(style_features[layer]) for layer in GATYS_STYLE_LAYERS}
        depth_target = normalize_depth_ssi(depth_for_loss(depth, content, resolution))
    image = content.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([image], lr=0.02)
    for _ in range(steps):
        features = vgg(image, taps=layers)
        loss = F.mse_loss(features[GATYS_CONTENT_LAYER], content_target)
        for layer in GATYS_STYLE_LAYERS:
            loss = loss + 5.0 * F.mse_loss(gram_matrix(features[layer]), grams[layer])
        predicted = normalize_depth_ssi(depth_for_loss(depth, image, resolution))
        loss = loss + 5.0 * F.mse_loss(predicted, depth_target)
        loss = loss + (image[..., 1:, :] - image[..., :-1, :]).pow(2).mean()
        loss = loss + (image[..., :, 1:] - image[..., :, :-1]).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            image.clamp_(0, 1)
        marks.append(time.perf_counter())


def networks(quick: bool):
    torch.manual_seed(0)
    vgg = VGG16Features()
    depth = random_depth_anything(DepthAnythingConfig.variant("small"))
    return vgg, depth


def photo_and_style(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    layout = torch.rand(2, 3, 6, 6, generator=generator)
    images = F.interpolate(layout, size=(size, size), mode="bicubic", align_corners=False).clamp(0, 1)
    return images[:1], images[1:]


def steps_per_second(quick: bool, repeats: int, precision: str) -> dict:
    """Steps per second of both loops at one scale, interleaved, best of ``repeats``; ours in
    ``precision``, the plain loop always in fp32."""
    size, steps, resolution = (64, 3, 56) if quick else (512, 6, 252)
    vgg, depth = networks(quick)
    content, style = photo_and_style(size)
    config = OptimizeConfig(
        size=size,
        min_size=size,
        steps=steps,
        first_scale_steps=steps,
        depth_resolution=resolution,
        precision=precision,
    )

    def ours(marks: list[float]) -> None:
        optimize_style(
            content,
            style,
            vgg=vgg,
            depth_model=depth,
            config=config,
            on_progress=lambda done, total, preview: marks.append(time.perf_counter()),
        )

    def plain(marks: list[float]) -> None:
        plain_reference(content, style, vgg, depth, steps, resolution, marks)

    best = best_step_seconds({"ours": ours, "plain": plain}, repeats)
    return {
        "ours_precision": precision,
        "size": f"{size}x{size}",
        "steps_timed": steps - 1,
        "depth_resolution": resolution,
        "ours_steps_per_s": round(1 / best["ours"], 3),
        "plain_steps_per_s": round(1 / best["plain"], 3),
        "ratio_ours_over_plain": round(best["plain"] / best["ours"], 3),
    }


def default_run(quick: bool) -> dict:
    """The default settings on a 512x384 photo (wall time, peak resident memory of this process)."""
    vgg, depth = networks(quick)
    photo, style = photo_and_style(512)
    photo = photo[..., 64:448, :]
    config = OptimizeConfig(steps=2, size=128) if quick else OptimizeConfig()
    totals: list[int] = []
    start = time.perf_counter()
    result = optimize_style(
        photo,
        style,
        vgg=vgg,
        depth_model=depth,
        config=config,
        on_progress=lambda done, total, preview: totals.append(total),
    )
    seconds = time.perf_counter() - start
    return {
        "photo": "512x384",
        "settings": "defaults" if not quick else "quick",
        "result": f"{result.shape[-1]}x{result.shape[-2]}",
        "steps": totals[-1],
        "seconds": round(seconds, 1),
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 2),
    }


def to_markdown(result: dict) -> str:
    """The result as a short Markdown page."""
    lines = ["# Per-image optimisation on this machine", "", "```", result["command"], "```", ""]
    lines += [f"torch {result['torch']}, Python {result['python']}, {result['threads']} threads.", ""]
    lines += ["| ours | size | steps/s ours | steps/s plain (fp32) | ours / plain |", "|---|---|---|---|---|"]
    for row in result["speed"]:
        lines.append(
            f"| {row['ours_precision']} | {row['size']} | {row['ours_steps_per_s']} | "
            f"{row['plain_steps_per_s']} | **{row['ratio_ours_over_plain']}** |"
        )
    run = result["default_run"]
    lines += [
        "",
        f"Default settings on a {run['photo']} photo ({run['steps']} steps over 5 scales, result "
        f"{run['result']}): **{run['seconds']} s**, peak resident memory {run['peak_rss_gb']} GB.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes, to check the script")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--default-run-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.default_run_only:
        print(json.dumps(default_run(args.quick)))
        return
    precisions = ("fp32", "bf16") if cpu_has_native_bf16() else ("fp32",)
    result = {**command_and_machine(), "speed": []}
    for precision in precisions:
        result["speed"].append(steps_per_second(args.quick, args.repeats, precision))
        print("speed", result["speed"][-1], flush=True)
    # The default run in a fresh process, so that its peak memory is its own.
    child = [sys.executable, __file__, "--default-run-only", *(["--quick"] if args.quick else [])]
    done = subprocess.run(child, capture_output=True, text=True, check=True)
    result["default_run"] = json.loads(done.stdout.strip().splitlines()[-1])
    print("default run", result["default_run"], flush=True)
    stem = RESULTS / f"optimize_cpu{'_quick' if args.quick else ''}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    stem.with_suffix(".md").write_text(to_markdown(result))
    print(f"written to {stem}.json and .md")


if __name__ == "__main__":
    main()
