"""What the commands share: finding the images named on the command line, reading them one by one with
unreadable files skipped, the exit statuses, the default model folder.

Exit statuses of every command: 0 everything was written; 2 an error stopped the command (the message
says what to do); 3 some inputs could not be read and were skipped, everything else was written;
130 interrupted with Ctrl+C.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    import torch

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
EXIT_OK = 0
EXIT_ERROR = 2
EXIT_SKIPPED = 3
EXIT_INTERRUPTED = 130

Item = TypeVar("Item")
Loaded = TypeVar("Loaded")


def default_models_dir() -> Path:
    """Where the CLI looks for model files unless ``--models-dir`` says otherwise.

    Deliberately no environment variable: the Comfy Registry scanner flags packs that read them.
    """
    return Path.home() / ".cache" / "depthstyle" / "models"


def expand_images(inputs: Sequence[str]) -> list[Path]:
    """Image files named on the command line; folders contribute their images (recursively, sorted).
    A file named twice (directly, or also through its folder) is listed once."""
    found: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES))
        else:
            found.append(path)
    seen: set[Path] = set()
    unique = []
    for path in found:
        if path.absolute() not in seen:
            seen.add(path.absolute())
            unique.append(path)
    return unique


def output_stems(paths: Sequence[Path]) -> dict[Path, str]:
    """A name for each input's results, distinct within the run, so that no result replaces another.

    Names are compared without case (as Windows and macOS file systems do). An input keeps its stem
    (``x.png``: ``x``) unless another input has the same one; clashing inputs are named by their path
    from the folder they share, joined with ``_`` (``a/x.png``, ``b/x.png``: ``a_x``, ``b_x``), then
    also by their suffix (``x.png``, ``x.jpg``: ``x_png``, ``x_jpg``); anything still clashing is
    numbered in input order (``x_2``).
    """
    names = [path.stem for path in paths]
    for group in _clashing_groups(names):
        for index, name in zip(group, _by_folder([paths[i] for i in group]), strict=True):
            names[index] = name
    for group in _clashing_groups(names):
        for index in group:
            names[index] += "_" + paths[index].suffix.lstrip(".").lower()
    taken: set[str] = set()
    for index, name in enumerate(names):
        unique, number = name, 2
        while unique.casefold() in taken:
            unique, number = f"{name}_{number}", number + 1
        taken.add(unique.casefold())
        names[index] = unique
    return dict(zip(paths, names, strict=True))


def _clashing_groups(names: list[str]) -> list[list[int]]:
    counts = Counter(name.casefold() for name in names)
    groups: dict[str, list[int]] = {}
    for index, name in enumerate(names):
        if counts[name.casefold()] > 1:
            groups.setdefault(name.casefold(), []).append(index)
    return list(groups.values())


def _by_folder(paths: list[Path]) -> list[str]:
    folders = [path.absolute().parent for path in paths]
    common = Path(os.path.commonpath(folders))
    return ["_".join(path.absolute().with_suffix("").relative_to(common).parts) for path in paths]


def output_folder(path: str | os.PathLike) -> Path:
    """The folder that ``-o`` names, checked before any work: a file in its place, or in the place of a
    folder above it, is an error at once. The folder itself is made with the first result, so a run
    that fails writes nothing."""
    from ..depthstyle_core.errors import OutputError

    folder = Path(path)
    existing = next(p for p in (folder, *folder.absolute().parents) if p.exists())
    if existing == folder and not folder.is_dir():
        raise OutputError(
            f"-o {folder} is a file, not a folder: name a folder for the results (it is made if missing)"
        )
    if not existing.is_dir():
        raise OutputError(f"cannot make the output folder {folder}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK):
        raise OutputError(f"cannot make the output folder {folder}: {existing} is not writable for you")
    return folder


def find_images(inputs: Sequence[str]) -> list[Path]:
    """:func:`expand_images`, or an :class:`InputImageError` naming the inputs when there are none."""
    from ..depthstyle_core.errors import InputImageError

    images = expand_images(inputs)
    if not images:
        raise InputImageError(
            f"no images found in {', '.join(inputs)}: name image files "
            f"({' '.join(IMAGE_SUFFIXES)}) or folders that contain them"
        )
    return images


class InputReader(Generic[Item, Loaded]):
    """Loads a command's inputs one by one. One that cannot be read (the loader raises
    :class:`InputImageError`) is reported and skipped and the others go on; :meth:`exit_status` then
    says so with :data:`EXIT_SKIPPED`.

    Iterating yields ``(item, loaded)``; call :meth:`done` after writing each result.
    """

    def __init__(self, command: str, items: Sequence[Item], load: Callable[[Item], Loaded]) -> None:
        self.command = command
        self.items = list(items)
        self.load = load
        self.skipped: list[Item] = []
        self.finished = 0

    def __iter__(self) -> Iterator[tuple[Item, Loaded]]:
        from ..depthstyle_core.errors import InputImageError

        for item in self.items:
            try:
                loaded = self.load(item)
            except InputImageError as exc:
                self.skipped.append(item)
                self._report(f"skipped: {exc}")
                continue
            yield item, loaded

    def done(self, item: Item, *written: object) -> None:
        """Report that ``item``'s results were written to ``written``."""
        self._report(f"{item} -> {', '.join(map(str, written))}")

    def _report(self, text: str) -> None:
        self.finished += 1
        print(f"[{self.finished}/{len(self.items)}] {text}", file=sys.stderr)

    def exit_status(self) -> int:
        """:data:`EXIT_OK`, or :data:`EXIT_SKIPPED` after a summary of what was skipped."""
        if not self.skipped:
            return EXIT_OK
        print(
            f"depthstyle {self.command}: skipped {len(self.skipped)} of {len(self.items)} inputs that could "
            f"not be read ({', '.join(map(str, self.skipped))}); the others were written (exit status "
            f"{EXIT_SKIPPED})",
            file=sys.stderr,
        )
        return EXIT_SKIPPED


def same_size_frames(
    loaded: list[tuple[Path, torch.Tensor]], mode: str = "shared"
) -> tuple[list[Path], torch.Tensor]:
    """The frames as one batch; frames of different sizes cannot share statistics (``--frames mode``)."""
    import torch

    from ..depthstyle_core.errors import InputImageError

    if not loaded:
        raise InputImageError("none of the frames could be read")
    first_path, first = loaded[0]
    for path, image in loaded[1:]:
        if image.shape != first.shape:
            raise InputImageError(
                f"--frames {mode} needs frames of one size: {first_path} is "
                f"{first.shape[-1]}x{first.shape[-2]} but {path} is {image.shape[-1]}x{image.shape[-2]}"
            )
    return [path for path, _ in loaded], torch.cat([image for _, image in loaded])


def add_collective_timeout(parser: argparse.ArgumentParser) -> None:
    """``--collective-timeout``: how long a torchrun process waits for the others."""
    parser.add_argument(
        "--collective-timeout",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="under torchrun: how long a process waits for the others before it gives up with an error "
        "(default 600)",
    )


def fraction(text: str) -> float:
    """A number from 0 to 1, for argparse."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number from 0 to 1, got {text!r}")
    return value
