"""Training-data benchmark: crops per second per loader thread, and listing a folder of 100 000 photos.

Decoding: ~2 000 generated 640x480 JPEGs (the size of MS-COCO photos), 256 px crops as in training.
``window`` is the shipped path (a JPEG decoded in draft mode straight into RGB, only the crop's
window resampled); ``earlier`` is the path before (a converted copy, the whole image resized, then
cropped). Each thread count runs them interleaved, best of the repeats; ``batches`` is the
BatchStream the trainer uses (batch 4), i.e. the shipped path with prefetching.

Listing: a flat folder of hard links to those JPEGs (like COCO's train2017/), listed by
``ContentSource.from_folder`` plus the fingerprint the trainer computes, against the earlier listing
(``rglob`` and a header check of every file with 8 threads). The page cache is warm for both.

    python bench/data_bench.py                                  # about 2 minutes on 2 cores
    python bench/data_bench.py --images 200 --listing 5000 --repeats 1   # a quick check
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from common import best_seconds_interleaved, command_and_machine
from PIL import Image, UnidentifiedImageError

from depthstyle.trainers.data import (
    IMAGE_SUFFIXES,
    BatchStream,
    ContentSource,
    CropSampler,
    shorter_side_size,
)

RESULTS = Path(__file__).parent / "results"
LINKS_PER_FILE = 50_000  # below the 65 000 hard links ext4 allows per file


def write_photos(folder: Path, count: int, size: tuple[int, int] = (640, 480)) -> list[Path]:
    """``count`` photo-like JPEGs (smooth colour layout, edges and sensor noise), quality 90."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    width, height = size
    paths = []
    for index in range(count):
        layout = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)).resize(size, Image.BICUBIC)
        pixels = np.asarray(layout, dtype=np.float32)
        pixels[:, rng.integers(0, width) :] *= 0.6  # an edge
        pixels += rng.normal(0, 8, pixels.shape)
        path = folder / f"{index:06d}.jpg"
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path, quality=90)
        paths.append(path)
    return paths


def crop_rates(folder: Path, threads: list[int], repeats: int, crop: int) -> list[dict]:
    """Crops per second over every image once, per variant and thread count."""
    source = ContentSource.from_folder(folder)
    sampler = CropSampler(source, crop, seed=0)
    count = len(source)

    def earlier(index: int):
        """The decoding before this benchmark: a converted copy, resized whole, then cropped."""
        with Image.open(source.name(index)) as image:
            height, width = shorter_side_size(image.height, image.width, crop)
            image.draft("RGB", (width, height))
            rgb = image.convert("RGB")
        rgb = rgb.resize((width, height), Image.Resampling.BICUBIC, reducing_gap=3.0)
        tensor = torch.from_numpy(np.asarray(rgb, dtype=np.uint8).copy()).permute(2, 0, 1).float().div_(255.0)
        return tensor[:, :crop, :crop]

    rows = []
    for workers in threads:
        with ThreadPoolExecutor(workers) as pool:

            def over_all(function, pool=pool):
                return lambda: list(pool.map(function, range(count)))

            def batches(workers=workers):
                with BatchStream(sampler, 4, workers=workers, prefetch=2 * workers) as stream:
                    for _ in range(count // 4):
                        next(stream)

            runs = {"window": over_all(sampler.sample), "earlier": over_all(earlier), "batches": batches}
            seconds = best_seconds_interleaved(runs, repeats=repeats, warmup=0)
        row = {"threads": workers}
        for name, value in seconds.items():
            done = count // 4 * 4 if name == "batches" else count
            row[f"{name}_crops_per_s"] = round(done / value, 1)
            row[f"{name}_crops_per_s_per_thread"] = round(done / value / workers, 1)
        row["window_speedup"] = round(seconds["earlier"] / seconds["window"], 3)
        rows.append(row)
        print("decode", row, flush=True)
    return rows


def earlier_listing(folder: Path) -> list[Path]:
    """The listing before this benchmark: rglob, then PIL reads every file's header (8 threads)."""

    def readable(path: Path) -> bool:
        try:
            with Image.open(path) as image:
                return image.width > 0 and image.height > 0
        except (UnidentifiedImageError, OSError, ValueError):
            return False

    candidates = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    with ThreadPoolExecutor(8) as pool:
        ok = list(pool.map(readable, candidates))
    return [p for p, good in zip(candidates, ok, strict=True) if good]


def listing_times(photos: list[Path], folder: Path, count: int, repeats: int) -> dict:
    """Seconds to list ``count`` files (hard links to ``photos``), now and as before."""
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        os.link(photos[index // LINKS_PER_FILE % len(photos)], folder / f"{index:06d}.jpg")

    def now() -> None:
        source = ContentSource.from_folder(folder)
        source.fingerprint()
        assert len(source) == count

    seconds = best_seconds_interleaved({"now": now, "earlier": lambda: earlier_listing(folder)}, repeats)
    start = time.perf_counter()
    ContentSource.from_folder(folder)
    listed_only = time.perf_counter() - start
    row = {
        "files": count,
        "list_and_fingerprint_s": round(seconds["now"], 3),
        "list_only_s": round(listed_only, 3),
        "earlier_listing_s": round(seconds["earlier"], 3),
        "speedup": round(seconds["earlier"] / seconds["now"], 1),
    }
    print("listing", row, flush=True)
    return row


def to_markdown(result: dict) -> str:
    lines = ["# Data pipeline", "", "```", result["environment"]["command"], "```", ""]
    lines += [f"- {k}: {v}" for k, v in result["environment"].items() if k != "command"]
    lines += ["", "## Decoding (crops per second)", ""]
    keys = list(result["decode"][0])
    lines += ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(str(row[k]) for k in keys) + " |" for row in result["decode"]]
    lines += ["", "window: the shipped decoding; earlier: the decoding before (copy, whole resize, crop);"]
    lines += ["batches: the trainer's BatchStream (batch 4, prefetch) on the shipped decoding.", ""]
    lines += ["## Listing (page cache warm)", ""]
    lines += [f"- {k}: {v}" for k, v in result["listing"].items()]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=2000, help="generated 640x480 JPEGs")
    parser.add_argument("--listing", type=int, default=100_000, help="files in the listed folder")
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--tag", default="cpu", help="suffix of the result files")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="depthstyle-data-bench-") as scratch:
        photos = write_photos(Path(scratch) / "photos", args.images)
        result = {
            "environment": {**command_and_machine(), "cpus": os.cpu_count(), "pillow": Image.__version__},
            "decode": crop_rates(Path(scratch) / "photos", args.threads, args.repeats, args.crop),
            "listing": listing_times(photos, Path(scratch) / "listed", args.listing, args.repeats),
        }
    args.output.mkdir(parents=True, exist_ok=True)
    stem = args.output / f"data_{args.tag}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    stem.with_suffix(".md").write_text(to_markdown(result))
    print(f"written to {stem}.json and .md")


if __name__ == "__main__":
    main()
