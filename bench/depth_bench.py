"""Depth estimation throughput: ours against transformers' Depth Anything V2, same weights, same process.

Ours is timed end to end (``estimate_depth``: resize, normalise, network, resize back, min-max);
transformers is timed on the network forward alone with an already prepared tensor, so the ratio
is conservative. Random weights with the real Small architecture: speed does not depend on values.

Run: python bench/depth_bench.py [--device cpu|cuda] [--batches 1 4] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from common import best_seconds_interleaved, command_and_machine, transformers_depth_anything_small

from depthstyle.depthstyle_core.depth import DepthEstimator, estimate_depth
from depthstyle.depthstyle_core.models.depth_anything import build_depth_anything, to_original_layout

RESOLUTION = 518


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--output", type=Path, default=Path(__file__).parent / "results" / "depth_cpu.json")
    args = parser.parse_args()
    device = torch.device(args.device)

    reference = transformers_depth_anything_small().to(device)
    ours = build_depth_anything(to_original_layout(reference.state_dict()), source="transformers").to(device)
    estimator = DepthEstimator(model=ours, name="Small (random weights)", licence="-")

    rows = []
    with torch.inference_mode():
        for batch in args.batches:
            images = torch.rand(batch, 3, RESOLUTION, RESOLUTION, device=device)
            prepared = (images - 0.45) / 0.225

            def run_ours(images=images, batch=batch):
                estimate_depth(estimator, images, resolution=RESOLUTION, chunk_size=batch)

            def run_reference(prepared=prepared):
                reference(pixel_values=prepared).predicted_depth.cpu()

            seconds = best_seconds_interleaved({"ours": run_ours, "ref": run_reference}, args.repeats)
            ours_s, ref_s = seconds["ours"], seconds["ref"]
            rows.append(
                {
                    "batch": batch,
                    "ours_images_per_s": batch / ours_s,
                    "transformers_images_per_s": batch / ref_s,
                    "ratio_ours_over_transformers": ref_s / ours_s,
                }
            )
            print(
                f"batch {batch}: ours {batch / ours_s:.3f} img/s, transformers {batch / ref_s:.3f} img/s, "
                f"ratio {ref_s / ours_s:.3f}"
            )

    result = {
        **command_and_machine(),
        "resolution": RESOLUTION,
        "device": str(device),
        "rows": rows,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {args.output}")


if __name__ == "__main__":
    main()
