"""Helpers shared by the benchmark scripts (run as ``python bench/<script>.py``)."""

from __future__ import annotations

import platform
import shlex
import sys
import time
from collections.abc import Callable

import torch


def best_seconds_interleaved(
    runs: dict[str, Callable[[], object]], repeats: int, warmup: int = 1
) -> dict[str, float]:
    """Fastest time of each run, the runs taking turns (in reversed order every other round), so that
    a slow spell of a shared machine, or going first, falls on all of them alike."""
    for run in runs.values():
        for _ in range(warmup):
            run()
    best = dict.fromkeys(runs, float("inf"))
    order = list(runs.items())
    for round_index in range(repeats):
        for name, run in order if round_index % 2 == 0 else reversed(order):
            start = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def command_and_machine() -> dict:
    """The exact command and what it ran on, so a result can be reproduced."""
    return {
        "command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(),
    }


def transformers_depth_anything_small():
    """transformers' Depth Anything V2 Small (the reference implementation) with random weights."""
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation

    config = DepthAnythingConfig(
        backbone_config={
            "model_type": "dinov2",
            "hidden_size": 384,
            "num_attention_heads": 6,
            "image_size": 518,
            "patch_size": 14,
            "out_indices": [3, 6, 9, 12],
            "reshape_hidden_states": False,
        },
        fusion_hidden_size=64,
        head_hidden_size=32,
        neck_hidden_sizes=[48, 96, 192, 384],
        reassemble_hidden_size=384,
        patch_size=14,
    )
    torch.manual_seed(0)
    return DepthAnythingForDepthEstimation(config).eval()


def random_depth_anything(config):
    """Default-initialised Depth Anything whose last bias keeps the final ReLU open, so that depth losses
    are not identically zero (the trainer refuses to calibrate a zero loss)."""
    from depthstyle.depthstyle_core.models.depth_anything import DepthAnythingV2

    model = DepthAnythingV2(config)
    with torch.no_grad():
        dict(model.named_parameters())["depth_head.scratch.output_conv2.2.bias"].fill_(1.0)
    return model.requires_grad_(False)
