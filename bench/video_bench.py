"""Speed and memory of video stylisation: ``frames`` independent, shared and flow, on one machine.

Speed: frames per second of the built-in any-painting network over a synthetic camera pan (a textured
picture moving by a few pixels a frame, so the flow has work to do), in each mode, at 512x512 and 1080p,
as ratios against ``shared`` measured in the same run. ``flow`` = ``shared`` + holding the frames still
(two DIS flows, the checks and two resampled keyframes a frame); its extra time is also given alone.

Memory: peak resident memory of ``stylize_video_file`` (the streamed file path of ``depthstyle stylize
clip.mp4``) for a clip and for one four times as long, each in a fresh process: it must not grow with
the clip.

Run: python bench/video_bench.py [--device cpu] [--frames 6] [--sizes 512x512 1920x1080] [--quick]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from common import command_and_machine

from depthstyle.depthstyle_core.any_style.model_file import load_any_style_model
from depthstyle.depthstyle_core.any_style.signals import style_signals
from depthstyle.depthstyle_core.any_style.stylize import stylize_any
from depthstyle.depthstyle_core.video.hold import hold_still

RESULTS = Path(__file__).parent / "results"
MODES = ("independent", "shared", "flow")
PAN = 3  # pixels per frame


def pan_clip(frames: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    """``[N,3,H,W]``: a smooth random picture with detail at several scales, panned ``PAN`` px a frame."""
    gen = torch.Generator().manual_seed(seed)
    wide = width + PAN * frames
    picture = torch.zeros(1, 3, height, wide)
    for cell in (4, 16, 64):
        coarse = torch.rand(1, 3, height // cell + 2, wide // cell + 2, generator=gen)
        picture += F.interpolate(coarse, size=(height, wide), mode="bicubic", align_corners=False) / 3
    picture = picture.clamp(0, 1)
    return torch.cat([picture[..., k * PAN : k * PAN + width] for k in range(frames)])


def speed(device: torch.device, frames: int, sizes: list[tuple[int, int]], repeats: int) -> list[dict]:
    model = load_any_style_model(device=device).to(memory_format=torch.channels_last)
    painting = torch.rand(1, 3, 384, 512, generator=torch.Generator().manual_seed(1))
    signals = style_signals(model, painting)
    rows = []
    for width, height in sizes:
        clip = pan_clip(frames, height, width).to(device)
        seconds = dict.fromkeys(MODES, float("inf"))
        hold_seconds = float("inf")
        with torch.inference_mode():
            stylize_any(model, clip[:1], signals)  # warm-up
            for _ in range(repeats):
                for mode in MODES:
                    start = time.perf_counter()
                    out = stylize_any(model, clip, signals, frames=mode)
                    if device.type == "cuda":
                        torch.cuda.synchronize(device)
                    seconds[mode] = min(seconds[mode], time.perf_counter() - start)
                start = time.perf_counter()
                hold_still(clip, out)
                hold_seconds = min(hold_seconds, time.perf_counter() - start)
        row = {"size": f"{width}x{height}", "frames": frames}
        row.update({f"{mode}_frames_per_s": round(frames / seconds[mode], 3) for mode in MODES})
        row.update({f"{mode}_x_shared_time": round(seconds[mode] / seconds["shared"], 3) for mode in MODES})
        row["hold_alone_s_per_frame"] = round(hold_seconds / frames, 4)
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def write_clip(path: Path, frames: int, height: int, width: int) -> None:
    """An H.264 file of a pan, written a few frames at a time."""
    import av
    import numpy as np

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for start in range(0, frames, 32):
            for picture in pan_clip(min(32, frames - start), height, width, seed=start):
                array = np.ascontiguousarray((picture.permute(1, 2, 0) * 255).round().to(torch.uint8).numpy())
                container.mux(stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")))
        container.mux(stream.encode(None))


def streamed_peak(frames: int, height: int, width: int) -> dict:
    """Stream a clip of ``frames`` frames through ``stylize_video_file`` in this process; its peak RSS."""
    import resource
    import tempfile

    from depthstyle.depthstyle_core.any_style.stylize import clip_look
    from depthstyle.depthstyle_core.video.hold import TemporalHold
    from depthstyle.depthstyle_core.video.stylize_file import sample_frames, stylize_video_file

    folder = Path(tempfile.mkdtemp())
    source = folder / "clip.mp4"
    write_clip(source, frames, height, width)
    model = load_any_style_model()
    with torch.inference_mode():
        signals = style_signals(model, torch.rand(1, 3, 256, 256))
        look = clip_look(model, sample_frames(source), signals)

        def paint(x: torch.Tensor) -> tuple[torch.Tensor, None]:
            return stylize_any(model, x, signals, frames="shared", look=look), None

        result = stylize_video_file(source, folder / "out.mp4", paint, hold=TemporalHold())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for leftover in folder.iterdir():
        leftover.unlink()
    folder.rmdir()
    return {"frames": result.written, "size": f"{width}x{height}", "peak_mb": round(peak / 1024)}


def memory(frames: int, height: int, width: int) -> dict:
    """:func:`streamed_peak` in a fresh process, so that each clip's peak is its own."""
    command = [sys.executable, __file__, "--memory-run", str(frames), str(height), str(width)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    row = json.loads(done.stdout.strip().splitlines()[-1])
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--frames", type=int, default=6)
    parser.add_argument("--sizes", nargs="+", default=["512x512", "1920x1080"])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--memory-frames", type=int, default=48, help="the short clip; the long one is 4x")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, to check the script itself")
    parser.add_argument("--memory-run", type=int, nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_run:
        print(json.dumps(streamed_peak(*args.memory_run)))
        return
    sizes = [tuple(int(v) for v in size.split("x")) for size in (["96x64"] if args.quick else args.sizes)]
    short = 8 if args.quick else args.memory_frames
    result = {
        "environment": command_and_machine(),
        "speed": speed(torch.device(args.device), 3 if args.quick else args.frames, sizes, args.repeats),
        "memory": [memory(short, 240, 320), memory(4 * short, 240, 320)],
    }
    name = f"video_{args.device}{'_quick' if args.quick else ''}"
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {RESULTS / name}.json")


if __name__ == "__main__":
    main()
