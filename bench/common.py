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


class StepMarks:
    """``on_progress`` of a timed training run: the clock at the end of step ``warm`` and of the last
    step, synchronised on CUDA so that queued work is counted. ``at_warm()`` runs when the warm-up
    ends (e.g. to reset the peak-memory counter)."""

    def __init__(self, warm: int, device: torch.device, at_warm: Callable[[], object] | None = None) -> None:
        self.warm = warm
        self.device = device
        self.at_warm = at_warm
        self.marks: dict[int, float] = {}

    def __call__(self, step: int, total: int, preview: object = None) -> None:
        if step in (self.warm, total):
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            self.marks[step] = time.perf_counter()
            if step == self.warm and self.at_warm is not None:
                self.at_warm()

    def steps_per_second(self) -> float:
        """Steps per second between the end of the warm-up and the end of the run."""
        last = max(self.marks)
        return (last - self.warm) / (self.marks[last] - self.marks[self.warm])


def join_like_torchrun(rank: int, world: int, port: int) -> None:
    """Give this spawned process the environment torchrun would, so that ``join_torchrun`` works."""
    import os

    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
    )


def rates_by_world(worker: Callable, worlds: tuple[int, ...], args: tuple) -> dict[int, float]:
    """For each world size, spawn that many processes of ``worker(rank, world, port, *args, queue)``
    (a top-level function) and return the steps per second that its rank 0 puts into ``queue``."""
    import socket

    import torch.multiprocessing as mp

    rates = {}
    for world in worlds:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        queue = mp.get_context("spawn").Queue()
        mp.start_processes(worker, args=(world, port, *args, queue), nprocs=world, start_method="spawn")
        rates[world] = queue.get(timeout=60)
    return rates


def best_step_seconds(
    runs: dict[str, Callable[[list[float]], object]], repeats: int, warmup: int = 1
) -> dict[str, float]:
    """The fastest mean step time of each run, from the end of its first step to the end of its last
    (its one-off set-up left out). A run appends ``time.perf_counter()`` to the list it is given after
    every step; the runs take turns as in :func:`best_seconds_interleaved`."""
    best = dict.fromkeys(runs, float("inf"))

    def timed(name: str) -> Callable[[], None]:
        def call() -> None:
            stamps: list[float] = []
            runs[name](stamps)
            best[name] = min(best[name], (stamps[-1] - stamps[0]) / (len(stamps) - 1))

        return call

    best_seconds_interleaved({name: timed(name) for name in runs}, repeats, warmup)
    return best


def pictures(count: int, height: int, width: int, seed: int, texture: float = 0.2) -> torch.Tensor:
    """Photo- or painting-like test images in 0..1: smooth random layouts plus ``texture`` of noise."""
    import torch.nn.functional as F

    generator = torch.Generator().manual_seed(seed)
    layout = F.interpolate(
        torch.rand(count, 3, 6, 6, generator=generator), size=(height, width), mode="bicubic"
    )
    noise = torch.rand(count, 3, height, width, generator=generator)
    return ((1 - texture) * layout + texture * noise).clamp(0, 1)
