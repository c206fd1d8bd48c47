"""Training images (photos, paintings): a folder of files or an in-memory batch, served as random square
crops.

Every crop is a pure function of ``(seed, sample index)``: an epoch's shuffled order comes from a
generator seeded with ``(seed, epoch)``, a crop's offset from one seeded with ``(seed, sample)``.
The data order therefore needs no saved state (resuming at step k only needs k), background threads
may load batches in any order, and several processes can each take their slice of one global batch
without changing what training sees.

A folder is only listed up front (no file is opened: 100 000 photos list in well under a second);
a file that cannot be decoded is found when it is first used, replaced by the next image of the
epoch's order, and remembered in :attr:`CropSampler.failed` so that it can be reported.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import deque
from collections.abc import Callable, Collection, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from ..depthstyle_core.errors import InputImageError, SettingsError
from ..depthstyle_core.images import to_rgb

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
_ORDER_STREAM = 0
_CROP_STREAM = 1
DECODE_ERRORS = (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError)

Placement = Callable[[int, int], tuple[int, int]]


def shorter_side_size(height: int, width: int, short_side: int) -> tuple[int, int]:
    """(height, width) scaled so that the shorter side is ``short_side``; no side below it."""
    scale = short_side / min(height, width)
    return max(short_side, round(height * scale)), max(short_side, round(width * scale))


def list_images(root: Path, suffixes: Collection[str] = IMAGE_SUFFIXES) -> list[tuple[str, int]]:
    """``(path, size in bytes)`` of every file under ``root`` whose lower-case suffix is in ``suffixes``,
    in the order of sorted ``Path``s.

    ``os.scandir`` reads the file types with the directory listing, so only the sizes cost a call
    per file. Links to files count; links to folders are not followed; unreadable sub-folders are
    left out.
    """
    found: list[tuple[str, int]] = []
    folders = [str(root)]
    while folders:
        folder = folders.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            if folder == str(root):
                raise
            continue
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                folders.append(entry.path)
            elif os.path.splitext(entry.name)[1].lower() in suffixes and entry.is_file():
                found.append((entry.path, entry.stat().st_size))
    found.sort(key=lambda item: item[0].split(os.sep))
    return found


def unreadable_summary(names: Collection[str], shown: int = 5, what: str = "content file") -> str:
    """``"3 unreadable content files: a.jpg, b.png, c.jpg"``, naming the first ``shown`` (sorted)."""
    first = sorted(names)[:shown]
    more = f" and {len(names) - len(first)} more" if len(names) > len(first) else ""
    return f"{len(names)} unreadable {what}{'s' if len(names) != 1 else ''}: {', '.join(first)}{more}"


def _to_tensor(image: Image.Image) -> torch.Tensor:
    array = np.asarray(image, dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).float().div_(255.0)


class ContentSource:
    """The images to train on: files found in a folder tree, or an in-memory batch.

    Build one with :meth:`from_folder` or :meth:`from_tensor`. ``kind`` names the images in messages
    ("content image", "painting").
    """

    def __init__(
        self,
        files: list[str] | None,
        images: torch.Tensor | None,
        description: str,
        sizes: list[int] | None = None,
        kind: str = "content image",
    ) -> None:
        self._files = files
        self._sizes = sizes
        self._images = images
        self.description = description
        self.kind = kind

    @classmethod
    def from_folder(cls, folder: str | os.PathLike, kind: str = "content image") -> ContentSource:
        """Every .jpg/.jpeg/.png/.webp/.bmp under ``folder`` (recursively, sorted by path).

        Only the folder tree is read here; files that turn out not to decode are reported by the
        :class:`CropSampler` that meets them.
        """
        root = Path(folder)
        if not root.is_dir():
            raise InputImageError(f"{kind} folder not found: {root}")
        listed = list_images(root)
        if not listed:
            raise InputImageError(
                f"no training images in {root} (the {kind} folder; sub-folders searched too). "
                f"Accepted extensions: {', '.join(IMAGE_SUFFIXES)}."
            )
        files = [path for path, _ in listed]
        return cls(files, None, f"{len(files)} images in {root}", [size for _, size in listed], kind)

    @classmethod
    def from_tensor(cls, images: torch.Tensor, kind: str = "content image") -> ContentSource:
        """An in-memory batch ``[N,C,H,W]`` in 0..1 (C = 1..4; greyscale and alpha are converted)."""
        if images.ndim != 4 or images.shape[0] == 0:
            raise InputImageError(
                f"{kind}s must be a non-empty batch [N,C,H,W], got shape {tuple(images.shape)}"
            )
        rgb = to_rgb(images.detach()).to("cpu", torch.float32).contiguous()
        return cls(None, rgb, f"{rgb.shape[0]} in-memory images", kind=kind)

    def __len__(self) -> int:
        return len(self._files) if self._files is not None else int(self._images.shape[0])

    @property
    def file_noun(self) -> str:
        """How messages name one of its files: "content file", "painting file"."""
        return self.kind.removesuffix(" image") + " file"

    def fingerprint(self) -> str:
        """A sha256 that changes when the images (their paths and sizes, or the tensor) change."""
        digest = hashlib.sha256()
        if self._files is not None:
            root = os.path.commonpath(self._files) if len(self._files) > 1 else ""
            skip = len(root) if root.endswith(os.sep) else len(root) + 1
            for path, size in zip(self._files, self._sizes, strict=True):
                digest.update(f"{path[skip:] if root else os.path.basename(path)}\0{size}\n".encode())
        else:
            digest.update(str(tuple(self._images.shape)).encode())
            digest.update(self._images.numpy().tobytes())
        return digest.hexdigest()

    def name(self, index: int) -> str:
        """A human-readable name of image ``index`` (its path, or its position in the batch)."""
        return self._files[index] if self._files is not None else f"image {index} of the batch"

    def load_resized(self, index: int, short_side: int) -> torch.Tensor:
        """Image ``index`` as ``[3,h,w]`` float32 0..1 with its shorter side ``short_side``.

        Raises :class:`InputImageError` when the file cannot be decoded.
        """
        return self.load_crop(index, short_side, None, lambda height, width: (0, 0))

    def load_crop(self, index: int, short_side: int, size: int | None, place: Placement) -> torch.Tensor:
        """A ``[3,size,size]`` window of image ``index`` resized to shorter side ``short_side``
        (``size`` None: the whole resized image). ``place(height, width)`` gets the resized image's
        size and returns the window's ``(top, left)``.

        Only the window is resampled (Pillow's ``box``), from a JPEG decoded at the smallest DCT
        scale that still covers the resized size (draft mode) straight into RGB, without a copy:
        the same pixels as resizing the whole image and cropping, up to rounding, for less work.
        """
        if self._files is None:
            image = self._images[index : index + 1]
            height, width = shorter_side_size(image.shape[-2], image.shape[-1], short_side)
            resized = F.interpolate(
                image, size=(height, width), mode="bilinear", align_corners=False, antialias=True
            )[0].clamp_(0, 1)
            top, left = place(height, width)
            return resized if size is None else resized[:, top : top + size, left : left + size]
        path = self._files[index]
        try:
            with Image.open(path) as image:
                height, width = shorter_side_size(image.height, image.width, short_side)
                top, left = place(height, width)
                image.draft("RGB", (width, height))
                image.load()
                rgb = image if image.mode == "RGB" else image.convert("RGB")  # no copy for RGB JPEGs
                out_w, out_h = (width, height) if size is None else (size, size)
                box = (  # integer products first: the far edges stay within the decoded image
                    left * rgb.width / width,
                    top * rgb.height / height,
                    (left + out_w) * rgb.width / width,
                    (top + out_h) * rgb.height / height,
                )
                rgb = rgb.resize((out_w, out_h), Image.Resampling.BICUBIC, box=box, reducing_gap=3.0)
        except DECODE_ERRORS as exc:
            raise InputImageError(f"cannot decode {path}: {exc}") from exc
        return _to_tensor(rgb)


class CropSampler:
    """Which image and which crop every training sample uses, derived from the seed alone.

    Sample ``s`` belongs to epoch ``s // N`` and takes position ``s % N`` of that epoch's shuffled
    order, so a folder smaller than the run is cycled with a fresh order each pass. An image that
    fails to decode is replaced by the next one in the epoch's order and remembered in
    :attr:`failed` (thread-safe).

    Images are resized to shorter side ``short_side`` (default: ``image_size``) before the crop.
    ``stream`` tells apart samplers that share a seed (photos 0, paintings 1): each draws its own
    orders and crops.
    """

    def __init__(
        self,
        source: ContentSource,
        image_size: int,
        seed: int,
        *,
        short_side: int | None = None,
        stream: int = 0,
    ) -> None:
        if short_side is not None and short_side < image_size:
            raise SettingsError(f"short_side ({short_side}) must be at least the crop size ({image_size})")
        self.source = source
        self.image_size = image_size
        self.short_side = short_side or image_size
        self.seed = seed
        self.failed: set[str] = set()
        self._streams = (_ORDER_STREAM + 2 * stream, _CROP_STREAM + 2 * stream)
        self._lock = threading.Lock()
        self._orders: dict[int, np.ndarray] = {}

    def _order(self, epoch: int) -> np.ndarray:
        with self._lock:
            order = self._orders.get(epoch)
            if order is None:
                rng = np.random.default_rng([self.seed, self._streams[0], epoch])
                order = rng.permutation(len(self.source))
                self._orders = {e: o for e, o in self._orders.items() if e >= epoch - 1}
                self._orders[epoch] = order
            return order

    def sample(self, index: int) -> torch.Tensor:
        """Training sample ``index`` as ``[3,S,S]`` float32 0..1, S = image_size."""
        count = len(self.source)
        epoch, position = divmod(index, count)
        order = self._order(epoch)
        size = self.image_size

        def place(height: int, width: int) -> tuple[int, int]:
            rng = np.random.default_rng([self.seed, self._streams[1], index])
            return int(rng.integers(0, height - size + 1)), int(rng.integers(0, width - size + 1))

        for attempt in range(count):
            image_index = int(order[(position + attempt) % count])
            try:
                return self.source.load_crop(image_index, self.short_side, size, place)
            except InputImageError:
                with self._lock:
                    self.failed.add(self.source.name(image_index))
        kind = self.source.kind
        raise InputImageError(
            f"none of the {count} {kind}s could be decoded ({self.source.description}): "
            f"{unreadable_summary(self.failed, what=self.source.file_noun)}"
        )

    def batch(self, step: int, batch_size: int, rank: int = 0, world_size: int = 1) -> torch.Tensor:
        """The ``[B,3,S,S]`` batch of training step ``step`` (0-based) for process ``rank`` of
        ``world_size``: its slice of the step's global batch of ``world_size * batch_size`` samples."""
        first = (step * world_size + rank) * batch_size
        return torch.stack([self.sample(first + i) for i in range(batch_size)])


class StepBatches(Protocol):
    """What a :class:`BatchStream` loads from: the batch of each step for each process (a
    :class:`CropSampler`, or the photo-and-painting pairs of the any-painting trainer)."""

    def batch(self, step: int, batch_size: int, rank: int = 0, world_size: int = 1) -> torch.Tensor: ...


class BatchStream:
    """Batches for steps ``start, start+1, ...`` loaded ahead by background threads.

    PIL decodes and resizes with the GIL released, so threads load in parallel without the
    pickling and process-start problems of DataLoader workers inside a host application. On CUDA
    batches are pinned and copied with ``non_blocking``. ``rank`` / ``world_size``: the slice of
    each global batch this process trains on (see :meth:`CropSampler.batch`). Use as a context manager.
    """

    def __init__(
        self,
        sampler: StepBatches,
        batch_size: int,
        *,
        start_step: int = 0,
        workers: int = 2,
        prefetch: int = 4,
        device: torch.device | str = "cpu",
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.sampler = sampler
        self.batch_size = batch_size
        self.device = torch.device(device)
        self._part = (rank, world_size)
        self._pin = self.device.type == "cuda"
        self._next_step = start_step
        self._pool = (
            ThreadPoolExecutor(workers, thread_name_prefix="depthstyle-data") if workers > 0 else None
        )
        self._ahead: deque[Future[torch.Tensor]] = deque()
        self._prefetch = max(1, prefetch) if self._pool else 0

    def _load(self, step: int) -> torch.Tensor:
        batch = self.sampler.batch(step, self.batch_size, *self._part)
        return batch.pin_memory() if self._pin else batch

    def _fill(self) -> None:
        while self._pool is not None and len(self._ahead) < self._prefetch:
            self._ahead.append(self._pool.submit(self._load, self._next_step))
            self._next_step += 1

    def __iter__(self) -> Iterator[torch.Tensor]:
        return self

    def __next__(self) -> torch.Tensor:
        if self._pool is None:
            batch = self._load(self._next_step)
            self._next_step += 1
        else:
            self._fill()
            batch = self._ahead.popleft().result()
            self._fill()
        return batch.to(self.device, non_blocking=self._pin)

    def close(self) -> None:
        """Stop the loader threads; batches not yet used are dropped."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._ahead.clear()

    def __enter__(self) -> BatchStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
