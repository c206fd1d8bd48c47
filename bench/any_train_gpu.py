"""The any-painting trainer's sections of ``gpu_suite.py``: steps per second of a depth-aware fine-tune
of the built-in network at the recipe's 256x256 crops, batch 8 (goal on one H100: 20 000 steps in
under 30 minutes, i.e. 11.1 steps/s), and its scaling over the GPUs of the machine (goal: near-linear to
8). The built-in network's real weights; VGG-16 and Depth Anything V2 Small with random weights."""

from __future__ import annotations

from pathlib import Path

import torch
from common import StepMarks, join_like_torchrun, pictures, random_depth_anything, rates_by_world

from depthstyle.depthstyle_core.models.depth_anything import DepthAnythingConfig
from depthstyle.depthstyle_core.models.vgg import VGG16Features
from depthstyle.trainers.any_style.config import AnyTrainConfig
from depthstyle.trainers.any_style.job import train_any_style

PUBLISHABLE_STEPS = 20_000
GOAL_MINUTES = 30


def _settings(quick: bool, steps: tuple[int, int], depth_weight: float = 5.0) -> AnyTrainConfig:
    size, load, batch, resolution = (32, 40, 2, 28) if quick else (256, 512, 8, 252)
    return AnyTrainConfig(
        iterations=sum(steps),
        batch_size=batch,
        image_size=size,
        load_size=load,
        depth_weight=depth_weight,
        depth_resolution=resolution,
        checkpoint_every=10**9,
        log_every=10**9,
        preview_every=0,
    )


def _train(config: AnyTrainConfig, device: torch.device, out: Path, marks: StepMarks, team=None) -> None:
    load = config.load_size
    torch.manual_seed(0)
    train_any_style(
        pictures(32, load + load // 8, load + load // 4, seed=1),
        pictures(32, load + load // 4, load + load // 8, seed=2),
        out,
        config=config,
        vgg=VGG16Features(),
        depth_model=random_depth_anything(DepthAnythingConfig.variant("small"))
        if config.depth_weight
        else None,
        device=device,
        on_progress=marks,
        team=team,
    )


def bench_any_training(
    device: torch.device, quick: bool, timer, out_dir: Path, steps: tuple[int, int] | None
) -> list[dict]:
    """Steps per second with and without the depth loss (precision auto: bf16 autocast on CUDA), the
    minutes 20 000 steps would take, and the peak memory. ``steps``: (warm-up, measured) steps."""
    steps = steps or ((2, 3) if quick else (20, 200))
    rows = []
    for depth_weight in (5.0, 0.0):
        config = _settings(quick, steps, depth_weight)
        marks = StepMarks(steps[0], device, at_warm=timer.reset_peak)
        _train(config, device, out_dir / f"bench_any_depth{depth_weight:g}", marks)
        rate = marks.steps_per_second()
        rows.append(
            {
                "depth_loss": bool(depth_weight),
                "crops": f"{config.image_size}x{config.image_size}",
                "batch": config.batch_size,
                "iterations_per_s": round(rate, 2),
                "minutes_for_20k": round(PUBLISHABLE_STEPS / rate / 60, 1),
                "goal_minutes": GOAL_MINUTES,
                "peak_gb": timer.peak_gb(),
            }
        )
        print("any_training", rows[-1], flush=True)
    return rows


def _any_worker(
    rank: int, world: int, port: int, device_type: str, quick: bool, out_dir: Path, steps: tuple, queue
) -> None:
    """One training process of :func:`bench_any_multi_gpu`, joined as torchrun would (env://)."""
    from depthstyle.trainers.distributed import join_torchrun

    join_like_torchrun(rank, world, port)
    if device_type == "cpu":
        torch.set_num_threads(1)
    with join_torchrun(device_type, timeout_s=300) as (team, device):
        marks = StepMarks(steps[0], device)
        _train(_settings(quick, steps), device, out_dir / f"bench_any_multi{world}", marks, team)
        if team.is_main:
            queue.put(marks.steps_per_second())


def bench_any_multi_gpu(
    device: torch.device, quick: bool, out_dir: Path, steps: tuple[int, int] | None
) -> list[dict]:
    """Steps per second with 1 process and with one process per visible GPU (batch 8 per process,
    depth loss on), and the scaling efficiency: the N-process rate over the 1-process rate (each step
    of N processes trains N times the pairs; 1.0 is linear). On the CPU 2 gloo processes check the
    code path."""
    count = torch.cuda.device_count() if device.type == "cuda" else 2
    if count < 2:
        return [{"processes": count, "note": "needs 2 or more GPUs"}]
    steps = steps or ((2, 3) if quick else (20, 200))
    rates = rates_by_world(_any_worker, (1, count), (device.type, quick, out_dir, steps))
    batch = _settings(quick, steps).batch_size
    rows = [
        {
            "processes": world,
            "iterations_per_s": round(rates[world], 2),
            "pairs_per_s": round(rates[world] * batch * world, 1),
            "scaling_efficiency": round(rates[world] / rates[1], 3),
        }
        for world in rates
    ]
    for row in rows:
        print("any_multi_gpu", row, flush=True)
    return rows
