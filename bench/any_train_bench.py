"""Training the any-painting network depth-aware: steps per second of ``train_any_style`` against a plain
training step written here, at 256x256 crops, batch 8 (the recipe's), on this machine.

Both fine-tune the built-in network (the real shipped weights) on the same photo-painting pairs with
the same four losses: VGG-16 content at relu4_1, mean/std style at relu1_1..relu4_1, the style-signal
contrastive loss, and Depth Anything V2 Small's scale-and-shift invariant depth loss at a 252 px
shorter side; Adam with the recipe's decaying learning rate. The loss networks have random weights and
the real architectures (speed does not depend on the values). The plain step is written the most
direct way: load the step's crops, forward, each loss, backward, step. The two loops take turns (best
of several), so a slow spell of the machine falls on both. Steps per second are timed from the end of
the first step to the end of the last, i.e. without each loop's one-off set-up (ours calibrates its
loss weights on the first step). On a CPU with native bf16 a second row runs ours with precision bf16
(opt-in on the CPU) against the same fp32 plain step.

    python bench/any_train_bench.py               # 256x256, batch 8
    python bench/any_train_bench.py --threads 1   # on a CPU shared with other jobs
    python bench/any_train_bench.py --quick       # tiny sizes, to check the script
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from common import best_step_seconds, command_and_machine, pictures, random_depth_anything

from depthstyle.depthstyle_core.any_style.losses import mean_std_loss, signal_contrastive_loss, signal_rows
from depthstyle.depthstyle_core.any_style.model_file import load_any_style_model
from depthstyle.depthstyle_core.depth import depth_for_loss
from depthstyle.depthstyle_core.losses import normalize_depth_ssi
from depthstyle.depthstyle_core.models.depth_anything import DepthAnythingConfig
from depthstyle.depthstyle_core.models.vgg import VGG16Features
from depthstyle.trainers.any_style.config import AnyTrainConfig
from depthstyle.trainers.any_style.data import PairSampler, split_pairs
from depthstyle.trainers.any_style.job import train_any_style
from depthstyle.trainers.any_style.objective import CONTENT_LAYER, STYLE_LAYERS
from depthstyle.trainers.data import ContentSource
from depthstyle.trainers.run.loss_networks import cpu_has_native_bf16

RESULTS = Path(__file__).parent / "results"


def plain_steps(config: AnyTrainConfig, sampler: PairSampler, vgg, depth, marks: list[float]) -> None:
    """The recipe's training step plus the depth loss, written directly, fp32, fixed weights."""
    net = load_any_style_model().train()
    optimizer = torch.optim.Adam(net.parameters(), lr=config.lr)
    for step in range(config.iterations):
        for group in optimizer.param_groups:
            group["lr"] = config.lr / (1 + config.lr_decay * step)
        photos, paintings = split_pairs(sampler.batch(step, config.batch_size))
        signals = net.style_signals(paintings)
        results = net.decode(net.content_features(photos), signals)
        features = vgg(results, taps=STYLE_LAYERS)
        with torch.no_grad():
            photo_features = vgg(photos, taps=(CONTENT_LAYER,))
            painting_features = vgg(paintings, taps=STYLE_LAYERS)
            photo_depth = normalize_depth_ssi(depth_for_loss(depth, photos, config.depth_resolution))
        content = F.mse_loss(features[CONTENT_LAYER], photo_features[CONTENT_LAYER])
        style = sum(mean_std_loss(features[layer], painting_features[layer]) for layer in STYLE_LAYERS)
        contrast = signal_contrastive_loss(signal_rows(net.style_signals(results)), signal_rows(signals))
        predicted = normalize_depth_ssi(depth_for_loss(depth, results, config.depth_resolution))
        loss = content + 3 * style + 3 * contrast + 5 * F.mse_loss(predicted, photo_depth)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        marks.append(time.perf_counter())


def steps_per_second(quick: bool, repeats: int, precision: str) -> dict:
    """Steps per second of both loops, interleaved, best of ``repeats``; ours in ``precision``."""
    size, load, batch, steps, resolution = (32, 40, 2, 3, 28) if quick else (256, 512, 8, 3, 252)
    torch.manual_seed(0)
    vgg = VGG16Features()
    depth = random_depth_anything(DepthAnythingConfig.variant("small"))
    photos = pictures(16, load + load // 8, load + load // 4, seed=1)
    paintings = pictures(16, load + load // 4, load + load // 8, seed=2)
    config = AnyTrainConfig(
        iterations=steps,
        batch_size=batch,
        image_size=size,
        load_size=load,
        depth_resolution=resolution,
        precision=precision,
        checkpoint_every=10**9,
        log_every=10**9,
        preview_every=0,
    )
    sampler = PairSampler(
        ContentSource.from_tensor(photos), ContentSource.from_tensor(paintings), size, load, config.seed
    )
    scratch = Path(tempfile.mkdtemp(prefix="any_train_bench_"))

    def ours(marks: list[float]) -> None:
        train_any_style(
            photos,
            paintings,
            scratch / "bench",
            config=config,
            vgg=vgg,
            depth_model=depth,
            on_progress=lambda step, total, preview: marks.append(time.perf_counter()),
        )

    def plain(marks: list[float]) -> None:
        plain_steps(config, sampler, vgg, depth, marks)

    best = best_step_seconds({"ours": ours, "plain": plain}, repeats, warmup=0)
    for leftover in scratch.iterdir():
        leftover.unlink()
    scratch.rmdir()
    return {
        "ours_precision": precision,
        "crops": f"{size}x{size}",
        "batch": batch,
        "load_size": load,
        "steps_timed": steps - 1,
        "depth_resolution": resolution,
        "ours_steps_per_s": round(1 / best["ours"], 4),
        "plain_steps_per_s": round(1 / best["plain"], 4),
        "ratio_ours_over_plain": round(best["plain"] / best["ours"], 3),
    }


def to_markdown(result: dict) -> str:
    """The result as a short Markdown page."""
    lines = ["# Training the any-painting network on this machine", "", "```", result["command"], "```", ""]
    lines += [f"torch {result['torch']}, Python {result['python']}, {result['threads']} threads.", ""]
    lines += ["| ours | crops | batch | steps/s ours | steps/s plain (fp32) | ours / plain |"]
    lines += ["|---|---|---|---|---|---|"]
    for row in result["speed"]:
        lines.append(
            f"| {row['ours_precision']} | {row['crops']} | {row['batch']} | {row['ours_steps_per_s']} | "
            f"{row['plain_steps_per_s']} | **{row['ratio_ours_over_plain']}** |"
        )
    lines += [
        "",
        "Both fine-tune the built-in network with VGG-16 content, style, the style-signal contrastive loss "
        "and the Depth Anything V2 Small depth loss (252 px); random loss-network weights. The goal on "
        "one H100 (20 000 steps in under 30 minutes, about 11 steps/s) is measured by "
        "`bench/gpu_suite.py --sections any_training`.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes, to check the script")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    precisions = ("fp32", "bf16") if cpu_has_native_bf16() else ("fp32",)
    result = {**command_and_machine(), "speed": []}
    for precision in precisions:
        result["speed"].append(steps_per_second(args.quick, args.repeats, precision))
        print("speed", result["speed"][-1], flush=True)
    stem = RESULTS / f"any_train_cpu{'_quick' if args.quick else ''}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    stem.with_suffix(".md").write_text(to_markdown(result))
    print(f"written to {stem}.json and .md")


if __name__ == "__main__":
    main()
