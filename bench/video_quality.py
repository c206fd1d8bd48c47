"""How still and how sharp a stylised clip is: ``frames`` independent, shared and flow on a real video.

Each mode paints the first ``--frames`` frames of ``VIDEO`` (resized to ``--long-side``) with the built-in
any-painting network and ``--style``, no depth. Reported, as in issue 21:
- the warping error (Lai et al. 2018; flow by OpenCV DIS medium on the input frames) between consecutive
  frames and between frames 10 apart, as a multiple of the input frames' own (the floor);
- detail: mean |Laplacian| of the output as a share of the ``shared`` result (the per-frame picture);
- seconds per frame of each mode on this machine.

Run: python bench/video_quality.py VIDEO --style PAINTING [--frames 30] [--long-side 640] [--hold 0.85]
                                    [--key-interval 8] [--name NAME]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from depthstyle.depthstyle_core.any_style.model_file import load_any_style_model
from depthstyle.depthstyle_core.any_style.stylize import stylize_any
from depthstyle.depthstyle_core.images import load_image
from depthstyle.depthstyle_core.stylize import long_side_size, resize_images
from depthstyle.depthstyle_core.video.files import read_frames
from depthstyle.depthstyle_core.video.flow import DISFlow
from depthstyle.depthstyle_core.video.hold import HoldSettings, hold_still
from depthstyle.depthstyle_core.video.warp_error import LONG_GAP, clip_warping_errors, mean_errors

RESULTS = Path(__file__).parent / "results"
LAPLACIAN = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]).view(1, 1, 3, 3)


def detail(frames: torch.Tensor) -> float:
    """Mean |Laplacian| of the frames' luma (a measure of fine detail)."""
    luma = frames.mean(dim=1, keepdim=True)
    return float(F.conv2d(luma, LAPLACIAN).abs().mean())


def clip(video: Path, count: int, long_side: int) -> torch.Tensor:
    frames = []
    for frame in read_frames(video):
        if len(frames) == count:
            break
        size = long_side_size(*frame.picture.shape[-2:], long_side)
        frames.append(resize_images(frame.picture, size).clamp(0, 1))
    return torch.cat(frames)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("video", type=Path)
    parser.add_argument("--style", type=Path, required=True)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--long-side", type=int, default=640)
    parser.add_argument("--hold", type=float, default=HoldSettings.hold)
    parser.add_argument("--key-interval", type=int, default=HoldSettings.key_interval)
    parser.add_argument("--name", default=None, help="save results/video_quality_NAME.json")
    args = parser.parse_args()
    torch.manual_seed(0)
    frames = clip(args.video, args.frames, args.long_side)
    model = load_any_style_model(None, "cpu")
    painting = load_image(args.style)
    settings = HoldSettings(hold=args.hold, key_interval=args.key_interval)
    outputs, seconds = {}, {}
    with torch.inference_mode():
        for mode in ("independent", "shared"):
            start = time.perf_counter()
            outputs[mode] = stylize_any(model, frames, painting, frames=mode)
            seconds[mode] = (time.perf_counter() - start) / len(frames)
        start = time.perf_counter()
        held = hold_still(frames, stylize_any(model, frames, painting, frames="shared"), settings=settings)
        outputs["flow"] = held
        seconds["flow"] = (time.perf_counter() - start) / len(frames)
    clips = list(outputs.values())
    flow = DISFlow("medium")
    short = mean_errors(clip_warping_errors(frames, clips, flow=flow))
    long = (
        mean_errors(clip_warping_errors(frames, clips, gap=LONG_GAP, flow=flow))
        if len(frames) > LONG_GAP
        else ()
    )
    base = detail(outputs["shared"])
    rows = {}
    for index, mode in enumerate(outputs, start=1):
        rows[mode] = {
            "warp_error": short[index],
            "x_floor": short[index] / short[0],
            "x_floor_long": long[index] / long[0] if long else None,
            "detail": detail(outputs[mode]) / base,
            "seconds_per_frame": seconds[mode],
        }
    result = {
        "command": "python bench/video_quality.py " + " ".join(sys.argv[1:]),
        "video": args.video.name,
        "frames": list(frames.shape),
        "flow": flow.name,
        "hold": settings.__dict__,
        "floor": short[0],
        "floor_long": long[0] if long else None,
        "modes": rows,
    }
    print(json.dumps(result, indent=1))
    if args.name:
        (RESULTS / f"video_quality_{args.name}.json").write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
