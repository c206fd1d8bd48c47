"""What a dataset stylisation has to do: the photos found, which paintings each one gets, where each
output goes, and which process does which photo.

The paintings of a photo are a pure function of ``(seed, the photo's relative path, k)`` and the number
of paintings: the ``k``-th distinct value of the stream ``hash(seed, path, j) mod P``, j = 0, 1, ...
(BLAKE2b). So the assignment is the same on any number of processes, on every rerun, and when photos are
added (nothing else is drawn from a shared random stream that a new photo would shift); painting ``k``
does not depend on how many paintings each photo gets.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ...depthstyle_core.errors import InputImageError
from ..data import list_images


@dataclass(frozen=True)
class Listing:
    """Files found under ``root``: their paths relative to it (``/``-separated) and sizes in bytes, in
    the order of sorted paths."""

    root: Path
    relative: list[str]
    sizes: list[int]

    def fingerprint(self) -> str:
        """A sha256 that changes when a file is added, removed, renamed or changes size."""
        digest = hashlib.sha256()
        for path, size in zip(self.relative, self.sizes, strict=True):
            digest.update(f"{path}\0{size}\n".encode())
        return digest.hexdigest()

    def path(self, relative: str) -> Path:
        """The file's full path."""
        return self.root / relative


def list_files(folder: str | os.PathLike, extensions: tuple[str, ...], what: str) -> Listing:
    """Every file under ``folder`` (recursively) with one of ``extensions``; ``what`` names the folder
    in the errors (``photo``, ``painting``)."""
    root = Path(folder)
    if not root.is_dir():
        raise InputImageError(f"{what} folder not found: {root}")
    found = list_images(root, extensions)
    if not found:
        raise InputImageError(
            f"no {what}s in {root} (sub-folders searched too) with the extensions {' '.join(extensions)}"
        )
    prefix = len(str(root).rstrip(os.sep)) + 1
    relative = [PurePosixPath(*Path(path[prefix:]).parts).as_posix() for path, _ in found]
    return Listing(root, relative, [size for _, size in found])


def painting_indices(seed: int, photo: str, count: int, paintings: int) -> list[int]:
    """The ``count`` different paintings (indices below ``paintings``) of the photo at relative path
    ``photo``; see the module docstring."""
    if count > paintings:
        raise ValueError(f"cannot draw {count} different paintings from {paintings}")
    chosen: list[int] = []
    draw = 0
    while len(chosen) < count:
        key = f"{seed}\0{photo}\0{draw}".encode()
        value = int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little") % paintings
        if value not in chosen:
            chosen.append(value)
        draw += 1
    return chosen


def output_path(photo: str, k: int, styles_per_image: int, suffix: str) -> str:
    """The output's path relative to the output folder: the photo's folders and stem, ``_k`` after the
    stem when each photo gets several paintings."""
    source = PurePosixPath(photo)
    stem = source.stem if styles_per_image == 1 else f"{source.stem}_{k}"
    return str(source.with_name(stem + suffix))


@dataclass(frozen=True, slots=True)
class Task:
    """One output: photo ``photo`` painted with painting ``painting`` (an index) as its ``k``-th."""

    photo: str
    k: int
    painting: int
    output: str


def all_tasks(photos: list[str], seed: int, styles_per_image: int, paintings: int, suffix: str) -> list[Task]:
    """Every output of the dataset, photo by photo. Raises :class:`InputImageError` when two photos
    would write the same file (e.g. ``a.jpg`` and ``a.png``), naming them."""
    tasks = []
    writers: dict[str, str] = {}
    for photo in photos:
        for k, painting in enumerate(painting_indices(seed, photo, styles_per_image, paintings)):
            output = output_path(photo, k, styles_per_image, suffix)
            if output in writers:
                raise InputImageError(
                    f"{writers[output]} and {photo} would both be written to {output}: keep one of them, or "
                    "choose the photos with --extensions (extensions=...)"
                )
            writers[output] = photo
            tasks.append(Task(photo, k, painting, output))
    return tasks


def share_of(tasks: list[Task], rank: int, world_size: int) -> list[Task]:
    """Process ``rank``'s part of ``tasks`` (grouped by photo): every ``world_size``-th photo from its
    ``rank``-th on. All outputs of a photo stay together, so it is decoded once; the parts differ by at
    most one photo."""
    mine = []
    group, last = -1, None
    for task in tasks:
        if task.photo != last:
            group, last = group + 1, task.photo
        if group % world_size == rank:
            mine.append(task)
    return mine
