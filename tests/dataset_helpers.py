"""A generated dataset for the ``stylize-dataset`` tests: a few hundred small JPEGs in class folders, a
few paintings, one broken painting and two broken photos, and helpers to compare output folders."""

from __future__ import annotations

import contextlib
import io
import shutil
from pathlib import Path

from depthstyle.cli import main

from .factories import picture

PHOTOS = 160
CLASSES = 4
SIZES = ((32, 24), (24, 32), (28, 28), (40, 30))  # (width, height): batches of one size need buckets
PAINTINGS = 6
BROKEN_PHOTOS = ("c1/broken.jpg", "c2/truncated.jpg")
BROKEN_PAINTING = "torn.png"
OPTIONS = (
    "--style-size",
    "32",
    "--format",
    "png",
    "--workers",
    "2",
    "--styles-per-image",
    "2",
    "--seed",
    "3",
)
"""The settings of every run on the tree: PNG, so that equal pixels mean equal bytes."""
IMAGES = PHOTOS * 2


def photo_name(index: int) -> str:
    return f"c{index % CLASSES}/{index:04d}.jpg"


def write_photo(root: Path, index: int) -> Path:
    path = root / photo_name(index)
    path.parent.mkdir(parents=True, exist_ok=True)
    picture(*SIZES[index % len(SIZES)], seed=index).save(path, quality=90)
    return path


def write_tree(root: Path, photos: range = range(PHOTOS)) -> tuple[Path, Path]:
    """``root/photos`` (the photos ``photos`` and the broken ones) and ``root/paintings``."""
    for index in photos:
        write_photo(root / "photos", index)
    good = (root / "photos" / photo_name(0)).read_bytes()
    for name, data in zip(BROKEN_PHOTOS, (b"not a JPEG at all", good[: len(good) // 3]), strict=True):
        (root / "photos" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "photos" / name).write_bytes(data)
    write_paintings(root / "paintings")
    (root / "paintings" / BROKEN_PAINTING).write_bytes(b"\x89PNG but not really")
    return root / "photos", root / "paintings"


def write_paintings(folder: Path) -> Path:
    """The readable paintings ``p0.png`` ... of the tree."""
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(PAINTINGS):
        picture(40 + 4 * index, 36, seed=100 + index).save(folder / f"p{index}.png")
    return folder


def cli_arguments(photos: Path, paintings: Path, out: Path, *extra: str) -> list[str]:
    """The ``depthstyle`` arguments of a run on the tree (on the CPU, with :data:`OPTIONS`)."""
    command = [
        "--device",
        "cpu",
        "stylize-dataset",
        "--content-dir",
        str(photos),
        "--style-dir",
        str(paintings),
    ]
    return [*command, "-o", str(out), *OPTIONS, *extra]


def stylize_dataset_cli(photos: Path, paintings: Path, out: Path, *extra: str) -> tuple[int, str]:
    """``depthstyle stylize-dataset`` in this process: the exit status and what it printed on stderr."""
    said = io.StringIO()
    with contextlib.redirect_stderr(said):
        code = main(cli_arguments(photos, paintings, out, *extra))
    return code, said.getvalue()


def tree_files(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (hidden ones too) by relative path, with its bytes."""
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def copy_tree(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target
