"""The any-painting network on the CPU: our torch path and our OpenVINO path against onnxruntime and
OpenVINO running the exported ONNX graph, in one process.

``network``: one photo of each size, the painting 512 px on its long side, no depth; the time of one
call, best of N with the runs taking turns. Ours is the whole ``stylize_any`` call (the painting's
signals, the photo's pass, the blend) with ``runtime="torch"`` and ``runtime="openvino"``; the
exported graph (``depthstyle export builtin``) takes the photo and the painting, as an application
would run it. Each result's largest difference from torch's, in 1/255, is listed with it.

``files``: a folder of photos painted and written as PNG, everything included (starting up, reading,
painting, writing): ``depthstyle stylize DIR --style PAINTING --depth-preserve 0`` in this process
(``--runtime auto`` and ``torch``), against a loop that reads each photo with Pillow, runs the
exported graph on onnxruntime (or OpenVINO) and writes the PNG with Pillow.

``large``: one 3840x2160 photo per runtime, each in a fresh process (so that the peak resident memory
is that call's): the time of the call, compiling included, and the peak.

Run: python bench/cpu_runtime.py [--sizes 512x512 1024x768 1920x1080] [--repeats 5] [--photos 8]
Needs the [cpu] and [onnx] extras and onnxruntime.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime
import openvino as ov
import torch
from common import best_seconds_interleaved, command_and_machine
from PIL import Image

from depthstyle.cli import main as depthstyle_main
from depthstyle.depthstyle_core.any_style.model_file import load_any_style_model
from depthstyle.depthstyle_core.any_style.stylize import stylize_any
from depthstyle.depthstyle_core.export import export_onnx
from depthstyle.depthstyle_core.images import load_image
from depthstyle.depthstyle_core.stylize import resize_images, scaled_size

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
PHOTO = ROOT / "tests" / "data" / "any_style" / "content.png"
PAINTING = ROOT / "tests" / "data" / "any_style" / "style.png"
PAINTING_SIDE = 512

Runner = Callable[[np.ndarray, np.ndarray], np.ndarray]


def exported_runners(onnx_file: Path) -> dict[str, Runner]:
    """The exported graph on onnxruntime and on OpenVINO (fp32), as ``(photo, painting) -> result``."""
    session = onnxruntime.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    compiled = ov.Core().compile_model(
        ov.Core().read_model(str(onnx_file)), "CPU", {"INFERENCE_PRECISION_HINT": "f32"}
    )
    return {
        "onnxruntime": lambda photo, painting: session.run(None, {"photo": photo, "painting": painting})[0],
        "openvino (exported graph)": lambda photo, painting: compiled([photo, painting])[0],
    }


def painting_at_side(path: Path) -> torch.Tensor:
    painting = load_image(path)
    size = scaled_size(*painting.shape[-2:], PAINTING_SIDE / max(painting.shape[-2:]))
    return resize_images(painting, size).clamp(0, 1)


def network_section(model, runners: dict[str, Runner], photo_path: Path, sizes, repeats: int) -> list[dict]:
    painting = painting_at_side(PAINTING)
    painting_array = painting.numpy()
    rows = []
    for height, width in sizes:
        photo = resize_images(load_image(photo_path), (height, width)).clamp(0, 1)
        photo_array = photo.numpy()

        def ours(runtime: str, photo: torch.Tensor = photo) -> Callable[[], torch.Tensor]:
            return lambda: stylize_any(model, photo, painting, style_size=0, runtime=runtime)

        runs = {"ours, torch": ours("torch"), "ours, openvino": ours("openvino")}
        for name, runner in runners.items():
            runs[name] = lambda runner=runner, photo_array=photo_array: runner(photo_array, painting_array)
        reference = runs["ours, torch"]().numpy()
        differences = {
            name: float(np.abs(np.asarray(run()) - reference).max() * 255) for name, run in runs.items()
        }
        best = best_seconds_interleaved(runs, repeats)
        rows.append(
            {
                "size": f"{width}x{height}",
                "seconds": {name: round(value, 4) for name, value in best.items()},
                "speed vs ours torch": {
                    name: round(best["ours, torch"] / value, 2) for name, value in best.items()
                },
                "max difference (1/255)": {name: round(value, 4) for name, value in differences.items()},
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return rows


def write_photos(photo_path: Path, folder: Path, count: int, size: tuple[int, int]) -> None:
    source = Image.open(photo_path).convert("RGB").resize((size[1], size[0]), Image.BICUBIC)
    folder.mkdir()
    for index in range(count):
        source.rotate(index * 3, resample=Image.BICUBIC).save(folder / f"photo{index:02d}.png")


def files_loop(runner_of: Callable[[], Runner], photos: Path, out: Path) -> None:
    """What an application with the exported graph does: read, paint and write each photo."""
    runner = runner_of()
    painting = Image.open(PAINTING).convert("RGB")
    side = max(painting.size)
    painting = painting.resize(
        (round(painting.width * PAINTING_SIDE / side), round(painting.height * PAINTING_SIDE / side)),
        Image.BICUBIC,
    )
    painting_array = (np.asarray(painting, dtype=np.float32) / 255).transpose(2, 0, 1)[None]
    out.mkdir(exist_ok=True)
    for path in sorted(photos.glob("*.png")):
        photo = (np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255).transpose(2, 0, 1)[None]
        result = runner(np.ascontiguousarray(photo), painting_array)[0]
        pixels = (np.clip(result, 0, 1) * 255 + 0.5).astype(np.uint8).transpose(1, 2, 0)
        Image.fromarray(pixels).save(out / f"{path.stem}_styled.png")


def files_section(onnx_file: Path, photo_path: Path, count: int, size: tuple[int, int], repeats: int) -> dict:
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        photos = work / "photos"
        write_photos(photo_path, photos, count, size)

        def ours(runtime: str) -> Callable[[], None]:
            args = [
                "--device",
                "cpu",
                "stylize",
                str(photos),
                "--style",
                str(PAINTING),
                "--depth-preserve",
                "0",
            ]
            return lambda: depthstyle_main([*args, "--runtime", runtime, "-o", str(work / runtime)])

        runs = {
            "depthstyle stylize, runtime auto": ours("auto"),
            "depthstyle stylize, runtime torch": ours("torch"),
        }
        for name in ("onnxruntime", "openvino (exported graph)"):
            runs[f"{name} loop"] = lambda name=name: files_loop(
                lambda: exported_runners(onnx_file)[name], photos, work / name.split()[0]
            )
        best = best_seconds_interleaved(runs, repeats, warmup=1)
        reference = best["onnxruntime loop"]
        row = {
            "photos": count,
            "size": f"{size[1]}x{size[0]}",
            "seconds": {name: round(value, 3) for name, value in best.items()},
            "speed vs onnxruntime loop": {name: round(reference / value, 2) for name, value in best.items()},
        }
        print(json.dumps(row), flush=True)
        return row


def peak_resident_bytes() -> int:
    """This process's peak resident memory since it started its program (VmHWM; getrusage's maximum
    carries over from the parent that started it)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status: the large section needs Linux")


def large_once(runtime: str, width: int, height: int) -> dict:
    """One large photo in this process: seconds and peak resident memory."""
    model = load_any_style_model()
    photo = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(1))
    started = time.perf_counter()
    with torch.inference_mode():
        stylize_any(model, photo, painting_at_side(PAINTING), style_size=0, runtime=runtime)
    seconds = time.perf_counter() - started
    peak = peak_resident_bytes() / 1e9
    return {
        "runtime": runtime,
        "size": f"{width}x{height}",
        "seconds": round(seconds, 2),
        "peak_rss_gb": round(peak, 2),
    }


def large_section(width: int, height: int) -> list[dict]:
    rows = []
    for runtime in ("torch", "openvino"):
        command = [sys.executable, __file__, "--large-once", runtime, f"{width}x{height}"]
        done = subprocess.run(command, capture_output=True, text=True, check=True, timeout=1200)
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", nargs="+", default=["512x512", "1024x768", "1920x1080"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--photos", type=int, default=8, help="photos in the files section")
    parser.add_argument("--files-size", default="1024x768")
    parser.add_argument("--photo", type=Path, default=PHOTO)
    parser.add_argument("--large", default="3840x2160", help="the photo of the large section")
    parser.add_argument("--large-once", nargs=2, metavar=("RUNTIME", "SIZE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.large_once:
        runtime, size = args.large_once
        print(json.dumps(large_once(runtime, *map(int, size.split("x")))))
        return
    sizes = [tuple(int(v) for v in reversed(text.split("x"))) for text in args.sizes]
    files_size = tuple(int(v) for v in reversed(args.files_size.split("x")))
    model = load_any_style_model()
    with tempfile.TemporaryDirectory() as folder:
        onnx_file = Path(folder) / "microast.onnx"
        export_onnx(model, onnx_file, {"name": "builtin"})
        with torch.inference_mode():
            started = time.perf_counter()
            network = network_section(model, exported_runners(onnx_file), args.photo, sizes, args.repeats)
            files = files_section(onnx_file, args.photo, args.photos, files_size, max(2, args.repeats // 2))
    large = large_section(*map(int, args.large.split("x")))
    result = {
        **command_and_machine(),
        "openvino": ov.__version__,
        "onnxruntime": onnxruntime.__version__,
        "seconds_total": round(time.perf_counter() - started, 1),
        "network": network,
        "files": files,
        "large": large,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "cpu_runtime.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
