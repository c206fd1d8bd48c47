"""GPU benchmark suite: depth, stylisation, the any-painting network, training, multi-GPU training
scaling, per-image optimisation, stylising a dataset on every GPU, training the any-painting network
(one GPU and all of them), and video held still by optical flow, written as JSON + Markdown.

Random weights with the real architectures (speed does not depend on the values). Every timing is
synchronised, best of a few repeats after warm-up; ratios compare runs made in this same process.

Run on a CUDA machine (about 10 minutes on an H100):
    python bench/gpu_suite.py --device cuda
Check that it works on the CPU (tiny sizes, seconds):
    python bench/gpu_suite.py --device cpu --quick
"""

from __future__ import annotations

import argparse
import json
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import torch
from any_train_gpu import bench_any_multi_gpu, bench_any_training
from common import (
    StepMarks,
    command_and_machine,
    join_like_torchrun,
    random_depth_anything,
    rates_by_world,
    transformers_depth_anything_small,
)

from depthstyle.depthstyle_core.any_style.model_file import load_any_style_model
from depthstyle.depthstyle_core.any_style.signals import style_signals
from depthstyle.depthstyle_core.any_style.stylize import stylize_any
from depthstyle.depthstyle_core.depth import DepthEstimator, estimate_depth
from depthstyle.depthstyle_core.models.depth_anything import (
    DepthAnythingConfig,
    build_depth_anything,
    to_original_layout,
)
from depthstyle.depthstyle_core.models.transformer_net import TransformerNet
from depthstyle.depthstyle_core.models.vgg import VGG16Features
from depthstyle.depthstyle_core.stylize import stylize
from depthstyle.trainers.fast.config import TrainConfig
from depthstyle.trainers.fast.job import train_style
from depthstyle.trainers.optimize.config import OptimizeConfig
from depthstyle.trainers.optimize.job import optimize_style

RESULTS = Path(__file__).parent / "results"
PRECISIONS = ("fp32", "fp16", "bf16")
SECTIONS = (
    "depth",
    "stylize",
    "any_style",
    "training",
    "multi_gpu",
    "optimize",
    "dataset",
    "any_training",
    "any_multi_gpu",
    "video",
)
IMAGENET_PER_GPU_GOAL = 360  # images/s per GPU: ImageNet-1k's 1.28 M photos in an hour on 8 GPUs


class Timer:
    """Synchronised wall-clock timing on one device."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def best(self, run: Callable[[], object], repeats: int, warmup: int = 1) -> float:
        """Fastest of ``repeats`` synchronised calls after ``warmup`` calls, in seconds."""
        for _ in range(warmup):
            run()
        self.sync()
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            run()
            self.sync()
            best = min(best, time.perf_counter() - start)
        return best

    def frames_per_s(self, run: Callable[[], object], repeats: int, warmup: int) -> float | str:
        """Calls per second of ``run`` under inference mode (peak memory counted from here), or why it
        failed: one failing variant must not stop the suite."""
        self.reset_peak()
        try:
            with torch.inference_mode():
                return round(1 / self.best(run, repeats, warmup), 2)
        except Exception as exc:
            return f"failed: {type(exc).__name__}: {exc}"[:200]

    def reset_peak(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)

    def peak_gb(self) -> float | None:
        if self.device.type != "cuda":
            return None
        return torch.cuda.max_memory_allocated(self.device) / 1e9


def environment(device: torch.device) -> dict:
    """GPU, driver, torch and the exact command, so the numbers can be reproduced."""
    info = {**command_and_machine(), "cuda": torch.version.cuda, "device": str(device)}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info["gpu"] = props.name
        info["gpu_memory_gb"] = round(props.total_memory / 1e9, 1)
        info["driver"] = _driver_version()
    return info


def _driver_version() -> str:
    try:
        import pynvml

        pynvml.nvmlInit()
        return str(pynvml.nvmlSystemGetDriverVersion())
    except Exception:
        proc = Path("/proc/driver/nvidia/version")
        return proc.read_text().split("\n")[0] if proc.exists() else "unknown"


def bench_depth(device: torch.device, quick: bool, timer: Timer) -> list[dict]:
    """Depth Anything V2 Small at 518 px: ours (end to end) and transformers (network only)."""
    resolution = 56 if quick else 518
    batches = (1, 2) if quick else (1, 8)
    repeats = 1 if quick else 5
    reference = transformers_depth_anything_small().to(device)
    ours = build_depth_anything(to_original_layout(reference.state_dict())).to(device).requires_grad_(False)
    estimator = DepthEstimator(model=ours, name="Small", licence="-")
    rows = []
    with torch.inference_mode():
        for precision in PRECISIONS:
            if device.type == "cpu" and precision == "fp16":
                continue
            dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]
            for batch in batches:
                images = torch.rand(batch, 3, resolution, resolution, device=device)

                def run_ours(images=images, precision=precision, batch=batch):
                    estimate_depth(
                        estimator, images, resolution=resolution, chunk_size=batch, precision=precision
                    )

                def run_reference(images=images, dtype=dtype):
                    with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
                        reference(pixel_values=images).predicted_depth.float()

                ours_s = timer.best(run_ours, repeats)
                ref_s = timer.best(run_reference, repeats)
                rows.append(
                    {
                        "precision": precision,
                        "batch": batch,
                        "ours_images_per_s": round(batch / ours_s, 2),
                        "transformers_images_per_s": round(batch / ref_s, 2),
                        "ratio": round(ref_s / ours_s, 3),
                    }
                )
                print("depth", rows[-1], flush=True)
    return rows


def bench_stylize(device: torch.device, quick: bool, timer: Timer) -> list[dict]:
    """Frames per second of ``stylize`` at 1080p and 4K: precision x channels_last x torch.compile."""
    sizes = ((64, 96),) if quick else ((1080, 1920), (2160, 3840))
    precisions = ("fp32",) if device.type == "cpu" else PRECISIONS
    compile_options = (False,) if quick else (False, True)
    repeats = 1 if quick else 5
    rows = []
    for height, width in sizes:
        frame = torch.rand(1, 3, height, width, device=device)
        for use_compile in compile_options:
            for channels_last in (False, True):
                torch.manual_seed(0)
                net = TransformerNet().eval().to(device)
                if channels_last:
                    net = net.to(memory_format=torch.channels_last)
                if use_compile:
                    net.compile()
                for precision in precisions:
                    fps = timer.frames_per_s(
                        lambda net=net, precision=precision, frame=frame: stylize(
                            net, frame, precision=precision
                        ),
                        repeats,
                        warmup=3 if use_compile else 1,
                    )
                    rows.append(
                        {
                            "size": f"{width}x{height}",
                            "precision": precision,
                            "channels_last": channels_last,
                            "compile": use_compile,
                            "frames_per_s": fps,
                            "peak_gb": timer.peak_gb(),
                        }
                    )
                    print("stylize", rows[-1], flush=True)
    return rows


def bench_any_style(device: torch.device, quick: bool, timer: Timer) -> list[dict]:
    """Frames per second of ``stylize_any`` (built-in weights, the painting's signals made once, as for
    video) at 1080p and 4K: precision x torch.compile of the network's parts. Goal: 4K at 60 frames/s."""
    sizes = ((64, 96),) if quick else ((1080, 1920), (2160, 3840))
    precisions = ("fp32",) if device.type == "cpu" else PRECISIONS
    compile_options = (False,) if quick else (False, True)
    repeats = 1 if quick else 10
    painting = torch.rand(1, 3, 384, 512, generator=torch.Generator().manual_seed(0))
    rows = []
    for use_compile in compile_options:
        model = load_any_style_model(device=device).to(memory_format=torch.channels_last)
        if use_compile:  # stylize_any calls the parts, not the whole module's forward
            for part in (model.content_encoder, model.decoder.dec1, model.decoder.dec2, model.decoder.dec3):
                part.compile()
        signals = style_signals(model, painting)
        for height, width in sizes:
            frame = torch.rand(1, 3, height, width, device=device)
            for precision in precisions:
                fps = timer.frames_per_s(
                    lambda model=model, frame=frame, signals=signals, precision=precision: stylize_any(
                        model, frame, signals, precision=precision
                    ),
                    repeats,
                    warmup=3 if use_compile else 1,
                )
                rows.append(
                    {
                        "size": f"{width}x{height}",
                        "precision": precision,
                        "compile": use_compile,
                        "frames_per_s": fps,
                        "goal_frames_per_s": 60 if height == 2160 else None,
                        "peak_gb": timer.peak_gb(),
                    }
                )
                print("any_style", rows[-1], flush=True)
    return rows


def bench_video(device: torch.device, quick: bool, timer: Timer) -> list[dict]:
    """Frames per second of a clip painted by the built-in network with ``frames`` shared and flow, at
    1080p and 4K (fp16 on CUDA): flow adds two DIS optical flows a frame (OpenCV, on the CPU) and the
    resampled keyframes (on the device). Goal: 4K with flow at 30 frames/s."""
    from video_bench import pan_clip

    from depthstyle.depthstyle_core.video.hold import HoldSettings, hold_still

    sizes = ((64, 96),) if quick else ((1080, 1920), (2160, 3840))
    frames = 3 if quick else 8
    precision = "fp16" if device.type == "cuda" else "fp32"
    model = load_any_style_model(device=device).to(memory_format=torch.channels_last)
    signals = style_signals(model, torch.rand(1, 3, 384, 512, generator=torch.Generator().manual_seed(0)))
    rows = []
    for height, width in sizes:
        clip = pan_clip(frames, height, width).to(device)
        shared = stylize_any(model, clip, signals, frames="shared", precision=precision)
        runs = {
            "shared": lambda clip=clip: stylize_any(
                model, clip, signals, frames="shared", precision=precision
            )
        }
        for preset in ("medium", "fast"):
            settings = HoldSettings(preset=preset)
            runs[f"hold_{preset}"] = lambda clip=clip, out=shared, s=settings: hold_still(
                clip, out, settings=s
            )
        row: dict = {"size": f"{width}x{height}", "precision": precision, "goal_frames_per_s": 30}
        for name, run in runs.items():
            per_clip = timer.frames_per_s(run, 1 if quick else 3, warmup=1)
            row[f"{name}_frames_per_s"] = (
                per_clip if isinstance(per_clip, str) else round(per_clip * frames, 2)
            )
        for preset in ("medium", "fast"):
            network, hold = row["shared_frames_per_s"], row[f"hold_{preset}_frames_per_s"]
            if not isinstance(network, str) and not isinstance(hold, str):
                row[f"flow_{preset}_frames_per_s"] = round(1 / (1 / network + 1 / hold), 2)
        row["peak_gb"] = timer.peak_gb()
        rows.append(row)
        print("video", row, flush=True)
    return rows


def bench_training(
    device: torch.device, quick: bool, timer: Timer, out_dir: Path, steps: tuple[int, int] | None
) -> list[dict]:
    """Iterations per second at 256 px, batch 4, with VGG-16 (and Depth Anything V2 Small) in the loss.
    ``steps``: (warm-up, measured) steps; default (20, 200), or (2, 3) with ``quick``."""
    warm, measured = steps or ((2, 3) if quick else (20, 200))
    image_size = 64 if quick else 256
    depth_config = DepthAnythingConfig.variant("small")
    rows = []
    for depth_weight in (5.0, 0.0):
        torch.manual_seed(0)
        vgg = VGG16Features()
        depth_model = random_depth_anything(depth_config) if depth_weight else None
        content = torch.rand(32, 3, image_size + 32, image_size + 32)
        style = torch.rand(1, 3, image_size, image_size)
        config = TrainConfig(
            iterations=warm + measured,
            batch_size=4,
            image_size=image_size,
            style_size=image_size,
            depth_weight=depth_weight,
            depth_resolution=56 if quick else 252,
            checkpoint_every=10**9,
            log_every=10**9,
            preview_every=0,
        )
        marks = StepMarks(warm, device, at_warm=timer.reset_peak)
        train_style(
            style,
            content,
            out_dir / f"bench_depth{depth_weight:g}.safetensors",
            config=config,
            vgg=vgg,
            depth_model=depth_model,
            device=device,
            on_progress=marks,
        )
        rate = marks.steps_per_second()
        rows.append(
            {
                "depth_loss": bool(depth_weight),
                "image_size": image_size,
                "batch": 4,
                "iterations_per_s": round(rate, 2),
                "minutes_for_40k": round(40_000 / rate / 60, 1),
                "peak_gb": timer.peak_gb(),
            }
        )
        print("train", rows[-1], flush=True)
    return rows


def bench_optimize(device: torch.device, quick: bool, timer: Timer) -> list[dict]:
    """The default 512 px per-image optimisation of a 512x384 photo (VGG-16 and Depth Anything V2 Small
    in the loop), after a short warm-up run: wall time (goal on an H100: under 5 s) and peak memory."""
    torch.manual_seed(0)
    vgg = VGG16Features()
    depth = random_depth_anything(DepthAnythingConfig.variant("small"))
    photo = torch.rand(1, 3, 384, 512)
    style = torch.rand(1, 3, 512, 512)
    precisions = ("fp32",) if device.type == "cpu" else ("fp32", "auto")
    rows = []
    for precision in precisions:
        config = OptimizeConfig(precision=precision, **({"size": 128, "steps": 2} if quick else {}))
        warm = OptimizeConfig(precision=precision, size=128 if quick else 256, steps=2)
        optimize_style(photo, style, vgg=vgg, depth_model=depth, config=warm, device=device)
        timer.reset_peak()
        totals: list[int] = []

        def run(config=config, totals=totals):
            optimize_style(
                photo,
                style,
                vgg=vgg,
                depth_model=depth,
                config=config,
                device=device,
                on_progress=lambda done, total, preview: totals.append(total),
            )

        seconds = timer.best(run, repeats=1, warmup=0)
        steps = totals[-1]
        rows.append(
            {
                "precision": "bf16 autocast" if precision == "auto" and device.type == "cuda" else "fp32",
                "result": "512x384" if not quick else "128x96",
                "steps": steps,
                "seconds": round(seconds, 2),
                "goal_seconds": 5,
                "peak_gb": timer.peak_gb(),
            }
        )
        print("optimize", rows[-1], flush=True)
    return rows


def _multi_process_worker(
    rank: int, world: int, port: int, device_type: str, quick: bool, out_dir: Path, steps: tuple, queue
) -> None:
    """One training process of :func:`bench_multi_gpu`, joined as torchrun would (env://)."""
    from depthstyle.trainers.distributed import join_torchrun

    join_like_torchrun(rank, world, port)
    if device_type == "cpu":
        torch.set_num_threads(1)
    warm, measured = steps
    image_size = 64 if quick else 256
    with join_torchrun(device_type, timeout_s=300) as (team, device):
        torch.manual_seed(0)
        config = TrainConfig(
            iterations=warm + measured,
            batch_size=4,
            image_size=image_size,
            style_size=image_size,
            depth_resolution=56 if quick else 252,
            checkpoint_every=10**9,
            log_every=10**9,
            preview_every=0,
        )
        marks = StepMarks(warm, device)
        train_style(
            torch.rand(1, 3, image_size, image_size),
            torch.rand(32, 3, image_size + 32, image_size + 32),
            out_dir / f"bench_multi{world}.safetensors",
            config=config,
            vgg=VGG16Features(),
            depth_model=random_depth_anything(DepthAnythingConfig.variant("small")),
            device=device,
            on_progress=marks,
            team=team,
        )
        if team.is_main:
            queue.put(marks.steps_per_second())


def bench_multi_gpu(
    device: torch.device, quick: bool, out_dir: Path, steps: tuple[int, int] | None
) -> list[dict]:
    """Training iterations per second with 1 process and with one process per visible GPU
    (DistributedDataParallel, batch 4 per process, depth loss on), and the scaling efficiency: the
    N-process rate over the 1-process rate (each step of N processes trains N times the crops).
    On the CPU it runs 2 gloo processes, to check the code path."""
    count = torch.cuda.device_count() if device.type == "cuda" else 2
    if count < 2:
        return [{"processes": count, "note": "needs 2 or more GPUs"}]
    steps = steps or ((2, 3) if quick else (20, 200))
    rates = rates_by_world(_multi_process_worker, (1, count), (device.type, quick, out_dir, steps))
    rows = [
        {
            "processes": world,
            "iterations_per_s": round(rates[world], 2),
            "crops_per_s": round(rates[world] * 4 * world, 1),
            "scaling_efficiency": round(rates[world] / rates[1], 3),
        }
        for world in rates
    ]
    for row in rows:
        print("multi_gpu", row, flush=True)
    return rows


def bench_dataset(device: torch.device, quick: bool, timer: Timer) -> list[dict]:
    """Stylising a dataset end to end on bench/dataset_bench.py's tree (2 000 photos of about 500x375,
    40 paintings of 1024x768, JPEG out, default settings): images per second per GPU with one process
    for a few worker-thread counts, then one process per visible GPU (scaling efficiency: its rate per
    GPU over the best one-process rate); and the network alone (batch 32 of 500x375 already on the
    GPU, no files) as the ceiling that decoding and encoding should keep the pipeline under. On the CPU
    (quick) a few small photos in 1 and 2 gloo processes check the code path. A first one-process run
    warms up (CUDA, kernels, the page cache) and is not counted."""
    import os
    import tempfile

    from dataset_bench import dataset_run, write_tree

    from depthstyle.depthstyle_core.any_style.stylize import runnable
    from depthstyle.trainers.datasets import DatasetConfig

    count = 16 if quick else 2000
    gpus = torch.cuda.device_count() if device.type == "cuda" else 2
    cpus = os.cpu_count() or 1
    style_size = 64 if quick else 512
    runs = [(1, workers) for workers in ((2,) if quick else sorted({4, 8, max(1, cpus - 1)}))]
    if gpus > 1:
        runs.append((gpus, max(1, (cpus - gpus) // gpus)))
    rows = []
    with tempfile.TemporaryDirectory(prefix="depthstyle-dataset-") as scratch:
        (photos,), paintings = write_tree(Path(scratch), count, scale=0.125 if quick else 1.0)
        warm = DatasetConfig(workers=runs[0][1], style_size=style_size)
        dataset_run(photos, paintings, Path(scratch) / "warm-up", warm, 1, device.type)  # not counted
        best_per_gpu = 0.0
        for index, (processes, workers) in enumerate(runs):
            config = DatasetConfig(workers=workers, style_size=style_size)
            out = Path(scratch) / f"out{index}"
            seconds = dataset_run(photos, paintings, out, config, processes, device.type)
            per_gpu = count / seconds / processes
            best_per_gpu = max(best_per_gpu, per_gpu) if processes == 1 else best_per_gpu
            rows.append(
                {
                    "variant": "end to end",
                    "processes": processes,
                    "workers_per_process": workers,
                    "images_per_s": round(count / seconds, 1),
                    "images_per_s_per_gpu": round(per_gpu, 1),
                    "goal_per_gpu": IMAGENET_PER_GPU_GOAL,
                    "scaling_efficiency": round(per_gpu / best_per_gpu, 3) if processes > 1 else None,
                }
            )
            print("dataset", rows[-1], flush=True)
    model = runnable(load_any_style_model(device=device), device)
    batch, (height, width) = (2, (47, 62)) if quick else (32, (375, 500))
    photos_on_device = torch.rand(batch, 3, height, width, device=device)
    signals = style_signals(model, torch.rand(1, 3, style_size, style_size, device=device)).map(
        lambda t: t.expand(batch, *t.shape[1:])
    )
    for precision in ("fp32",) if device.type == "cpu" else PRECISIONS:
        fps = timer.frames_per_s(
            lambda precision=precision: stylize_any(
                model, photos_on_device, signals, chunk_size=batch, precision=precision
            ),
            repeats=1 if quick else 10,
            warmup=1,
        )
        rows.append(
            {
                "variant": f"network only, batch {batch}, {precision}",
                "processes": 1,
                "workers_per_process": None,
                "images_per_s": round(fps * batch, 1) if isinstance(fps, float) else fps,
                "images_per_s_per_gpu": round(fps * batch, 1) if isinstance(fps, float) else fps,
                "goal_per_gpu": IMAGENET_PER_GPU_GOAL,
                "scaling_efficiency": None,
            }
        )
        print("dataset", rows[-1], flush=True)
    return rows


def to_markdown(result: dict) -> str:
    """The result as Markdown tables, one per section."""
    lines = ["# GPU suite", "", "```", result["environment"]["command"], "```", ""]
    lines += [f"- {k}: {v}" for k, v in result["environment"].items() if k != "command"]
    for section in SECTIONS:
        rows = result.get(section)
        lines += ["", f"## {section}", ""]
        if not isinstance(rows, list) or not rows:
            lines.append(f"not run: {rows}")
            continue
        keys = list(rows[0])
        lines += ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
        lines += ["| " + " | ".join(str(row.get(k)) for k in keys) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, to check the suite itself")
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--output", type=Path, default=RESULTS, help="folder for the JSON and Markdown")
    parser.add_argument("--tag", default="", help="suffix of the result files, e.g. 'before' or 'after'")
    parser.add_argument(
        "--train-steps", type=int, nargs=2, metavar=("WARMUP", "MEASURED"), help="training steps to time"
    )
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.quick and device.type == "cpu":
        torch.set_num_threads(1)  # tiny sizes: on a shared CPU, more threads only wait for each other
    timer = Timer(device)
    torch.backends.cudnn.benchmark = True
    result: dict = {"environment": environment(device)}
    scratch = args.output / "scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    runners = {
        "depth": lambda: bench_depth(device, args.quick, timer),
        "stylize": lambda: bench_stylize(device, args.quick, timer),
        "any_style": lambda: bench_any_style(device, args.quick, timer),
        "training": lambda: bench_training(device, args.quick, timer, scratch, args.train_steps),
        "optimize": lambda: bench_optimize(device, args.quick, timer),
        "multi_gpu": lambda: bench_multi_gpu(device, args.quick, scratch, args.train_steps),
        "dataset": lambda: bench_dataset(device, args.quick, timer),
        "any_training": lambda: bench_any_training(device, args.quick, timer, scratch, args.train_steps),
        "any_multi_gpu": lambda: bench_any_multi_gpu(device, args.quick, scratch, args.train_steps),
        "video": lambda: bench_video(device, args.quick, timer),
    }
    for section in args.sections:
        start = time.perf_counter()
        try:
            result[section] = runners[section]()
        except Exception:
            result[section] = traceback.format_exc(limit=5)
            print(result[section], flush=True)
        print(f"{section}: {time.perf_counter() - start:.0f} s", flush=True)
    for leftover in scratch.iterdir():
        leftover.unlink()
    scratch.rmdir()
    suffix = f"_{args.tag}" if args.tag else ""
    stem = f"gpu_suite_{device.type}{'_quick' if args.quick else ''}{suffix}"
    (args.output / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.output / f"{stem}.md").write_text(to_markdown(result))
    print(f"written to {args.output / stem}.json and .md")


if __name__ == "__main__":
    main()
