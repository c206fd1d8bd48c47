"""Dataset stylisation benchmark: images per second end to end, and where the time goes.

A generated tree of ImageNet-like photos (JPEG, quality 90, 500x375, 375x500 and 500x333, in class
folders) and 40 paintings of 1024x768 (JPEG, like Painter by Numbers), the built-in network, paintings
at 512 px, JPEG output at quality 90 (the command's defaults). The tree is cut into ``--rounds`` parts;
in each round every variant stylises that part end to end (listing, paintings, photos, manifest), the
variants taking turns in reversed order every other round, so the load of a shared machine falls on
all of them alike; a variant's rate is all the photos over its summed time.

- ``plain loop``: the reference, as a one-process tool does it: for each photo decode it and its
  painting, stylise (the painting encoded again each time), encode, one image after the other;
- ``stylize_dataset`` with 1 and 2 worker threads, in 1 process (torch uses every core) and in 2
  processes (gloo, one torch thread each, joined as torchrun would join them).

"Where the time goes" times each stage alone on a sample of photos, one torch thread, one image at a
time: decoding a photo, the network, encoding the output, and per painting its decoding and encoding.

    python bench/dataset_bench.py                       # 2 000 photos; about 40 minutes on 2 cores
    python bench/dataset_bench.py --images 40 --rounds 2 --sample 4   # a quick check
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.multiprocessing as mp
from common import command_and_machine
from PIL import Image

from depthstyle.depthstyle_core.any_style.model_file import load_any_style_model
from depthstyle.depthstyle_core.any_style.signals import style_signals
from depthstyle.depthstyle_core.any_style.stylize import stylize_any
from depthstyle.depthstyle_core.images import load_image, tensor_to_pil
from depthstyle.trainers.datasets import DatasetConfig, stylize_dataset
from depthstyle.trainers.datasets.codec import load_painting, load_photo, write_image
from depthstyle.trainers.datasets.painters import AnyPaintingPainter
from depthstyle.trainers.datasets.paintings import PaintingTable, flatten
from depthstyle.trainers.datasets.pipeline import HostCopy
from depthstyle.trainers.datasets.plan import list_files, painting_indices

RESULTS = Path(__file__).parent / "results"
PHOTO_SIZES = ((500, 375), (375, 500), (500, 333), (500, 375))
PAINTINGS = 40
CLASSES = 10


def _picture(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """Photo-like content: a smooth colour layout, an edge and sensor noise."""
    layout = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)).resize(
        (width, height), Image.BICUBIC
    )
    pixels = np.asarray(layout, dtype=np.float32)
    pixels[:, rng.integers(0, width) :] *= 0.6
    pixels += rng.normal(0, 8, pixels.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def write_tree(root: Path, count: int, rounds: int = 1, scale: float = 1.0) -> tuple[list[Path], Path]:
    """``rounds`` parts of photos (``part<i>/n<class>/<index>.jpg``) and the paintings' folder; ``scale``
    shrinks every picture (for quick checks)."""
    rng = np.random.default_rng(0)
    parts = [root / "photos" / f"part{r}" for r in range(rounds)]
    for index in range(count):
        width, height = PHOTO_SIZES[index % len(PHOTO_SIZES)]
        path = parts[index % rounds] / f"n{index % CLASSES:02d}" / f"{index:06d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        _picture(rng, round(width * scale), round(height * scale)).save(path, quality=90)
    paintings = root / "paintings"
    paintings.mkdir()
    for index in range(PAINTINGS):
        painting = _picture(rng, round(1024 * scale), round(768 * scale))
        painting.save(paintings / f"painting{index:03d}.jpg", quality=90)
    return parts, paintings


def plain_loop(photos: Path, paintings: Path, out: Path) -> None:
    """The reference: one image after the other, the painting decoded and encoded again for each."""
    model = load_any_style_model()
    listing = list_files(photos, (".jpg",), "photo")
    pool = list_files(paintings, (".jpg",), "painting")
    with torch.inference_mode():
        for relative in listing.relative:
            (painting,) = painting_indices(0, relative, 1, len(pool.relative))
            photo = load_image(listing.path(relative))
            styled = stylize_any(model, photo, load_image(pool.path(pool.relative[painting])))
            target = out / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            tensor_to_pil(styled).save(target, quality=90)


def _process(
    rank: int, world: int, port: int, device_type: str, job: tuple[Path, Path, Path, DatasetConfig], queue
) -> None:
    """One process of a run with several, joined as torchrun would join it (env://); it puts the
    seconds of its stylize_dataset call on ``queue``."""
    from depthstyle.trainers.distributed import join_torchrun

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world))
    os.environ["LOCAL_RANK"] = str(rank)
    if device_type == "cpu":
        torch.set_num_threads(1)
    photos, paintings, out, config = job
    with join_torchrun(device_type, timeout_s=600) as (team, device):
        team.from_main(None)  # start together
        start = time.perf_counter()
        stylize_dataset(photos, out, style_dir=paintings, config=config, device=device, team=team)
        queue.put(time.perf_counter() - start)


def dataset_run(
    photos: Path, paintings: Path, out: Path, config: DatasetConfig, processes: int, device_type: str = "cpu"
) -> float:
    """Seconds of a ``stylize_dataset`` run: in this process, or the slowest of ``processes`` spawned
    ones (their start and joining not counted)."""
    if processes == 1:
        start = time.perf_counter()
        stylize_dataset(photos, out, style_dir=paintings, config=config, device=device_type)
        return time.perf_counter() - start
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    context = mp.get_context("spawn")
    queue = context.Queue()
    args = (processes, port, device_type, (photos, paintings, out, config), queue)
    mp.start_processes(_process, args=args, nprocs=processes, start_method="spawn")
    return max(queue.get(timeout=600) for _ in range(processes))


def end_to_end(parts: list[Path], paintings: Path, scratch: Path, count: int) -> list[dict]:
    """Images per second of each variant over every part of the tree (rounds interleaved)."""
    variants = {
        "plain loop": None,
        **{
            f"{p} process{'es' if p > 1 else ''}, {w} worker{'s' if w > 1 else ''}": (w, p)
            for p in (1, 2)
            for w in (1, 2)
        },
    }
    seconds = dict.fromkeys(variants, 0.0)
    names = list(variants)
    for round_index, part in enumerate(parts):
        for name in names if round_index % 2 == 0 else reversed(names):
            out = scratch / f"{name.replace(' ', '_').replace(',', '')}_{round_index}"
            torch.set_num_threads(os.cpu_count() or 1)
            if variants[name] is None:
                start = time.perf_counter()
                plain_loop(part, paintings, out)
                taken = time.perf_counter() - start
            else:
                workers, processes = variants[name]
                taken = dataset_run(part, paintings, out, DatasetConfig(workers=workers), processes)
            seconds[name] += taken
            print(f"round {round_index} {name}: {taken:.1f} s", flush=True)
    reference = seconds["plain loop"]
    rows = []
    for name, total in seconds.items():
        rows.append(
            {
                "variant": name,
                "images_per_s": round(count / total, 2),
                "seconds": round(total, 1),
                "speedup_vs_plain_loop": round(reference / total, 3),
            }
        )
        print("end to end", rows[-1], flush=True)
    return rows


def where_the_time_goes(parts: list[Path], paintings: Path, scratch: Path, sample: int) -> dict:
    """Milliseconds per image of each stage alone, one torch thread, one image at a time."""
    torch.set_num_threads(1)
    model = load_any_style_model()
    photos = list_files(parts[0], (".jpg",), "photo")
    pool = list_files(paintings, (".jpg",), "painting")
    chosen = photos.relative[:sample]
    timings: dict[str, list[float]] = {name: [] for name in ("decode", "network", "encode", "painting")}

    def timed(name: str, function):
        start = time.perf_counter()
        value = function()
        timings[name].append(time.perf_counter() - start)
        return value

    with torch.inference_mode():
        rows = []
        for relative in pool.relative[: max(2, sample // 4)]:
            painting = timed("painting", lambda r=relative: load_painting(pool.path(r), 512))
            rows.append(flatten(timed("painting", lambda p=painting: style_signals(model, p)))[0])
        table = PaintingTable(
            pool.relative[: len(rows)], [0] * len(rows), torch.stack(rows), style_signals(model, painting), []
        )
        painter = AnyPaintingPainter(model, table, DatasetConfig())
        for index, relative in enumerate(chosen):
            pixels = timed("decode", lambda r=relative: load_photo(photos.path(r)))
            photo = pixels.unsqueeze(0).float().div_(255.0)
            styled = timed(
                "network", lambda p=photo, i=index: HostCopy(painter.paint(p, [i % len(rows)])).wait()
            )
            timed(
                "encode", lambda s=styled, i=index: write_image(s[0].numpy(), scratch / f"{i}.jpg", "jpg", 90)
            )
    per_image = {
        name: round(1000 * sum(values) / len(values), 2)
        for name, values in timings.items()
        if name != "painting"
    }
    painting_ms = round(1000 * sum(timings["painting"]) / (len(timings["painting"]) // 2), 2)
    total = sum(per_image.values())
    result = {
        "photos_timed": len(chosen),
        "ms_per_image": per_image,
        "share": {name: round(ms / total, 3) for name, ms in per_image.items()},
        "painting_decode_and_encode_ms": painting_ms,
    }
    print("where the time goes", result, flush=True)
    return result


def to_markdown(result: dict) -> str:
    lines = ["# Dataset stylisation", "", "```", result["environment"]["command"], "```", ""]
    lines += [f"- {k}: {v}" for k, v in result["environment"].items() if k != "command"]
    lines += ["", f"## End to end ({result['images']} photos of about 500x375, JPEG out)", ""]
    keys = list(result["end_to_end"][0])
    lines += ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(str(row[k]) for k in keys) + " |" for row in result["end_to_end"]]
    stages = result["where_the_time_goes"]
    lines += ["", "## Where the time goes (one torch thread, one image at a time)", ""]
    lines += ["| stage | ms per image | share |", "|---|---|---|"]
    lines += [f"| {name} | {ms} | {stages['share'][name]} |" for name, ms in stages["ms_per_image"].items()]
    lines += [
        "",
        f"Each painting, once per run: {stages['painting_decode_and_encode_ms']} ms (decode and encode).",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=2000, help="generated photos")
    parser.add_argument("--rounds", type=int, default=4, help="parts of the tree, one per round")
    parser.add_argument("--sample", type=int, default=40, help="photos timed stage by stage")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--tag", default="cpu", help="suffix of the result files")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="depthstyle-dataset-bench-") as scratch:
        root = Path(scratch)
        parts, paintings = write_tree(root, args.images, args.rounds)
        stages = root / "stages"
        stages.mkdir()
        result = {
            "environment": {**command_and_machine(), "cpus": os.cpu_count(), "pillow": Image.__version__},
            "images": args.images,
            "where_the_time_goes": where_the_time_goes(parts, paintings, stages, args.sample),
            "end_to_end": end_to_end(parts, paintings, root / "runs", args.images),
        }
    args.output.mkdir(parents=True, exist_ok=True)
    stem = args.output / f"dataset_{args.tag}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    stem.with_suffix(".md").write_text(to_markdown(result))
    print(f"written to {stem}.json and .md")


if __name__ == "__main__":
    main()
