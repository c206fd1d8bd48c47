"""Training content images: a folder of files or an in-memory batch, served as random square crops.

Every crop is a pure function of ``(seed, sample index)``: an epoch's shuffled order comes from a
generator seeded with ``(seed, epoch)``, a crop's offset from one seeded with ``(seed, sample)``.
The data order therefore needs no saved state (resuming at step k only needs k), and background
threads may load batches in any order without changing what training sees.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from ..depthstyle_core.errors import InputImageError
from ..depthstyle_core.images import to_rgb

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
_ORDER_STREAM = 0
_CROP_STREAM = 1
_SCAN_THREADS = 8


def _readable(path: Path) -> bool:
    """True if PIL recognises the file's header (cheap: the pixels are not decoded)."""
    try:
        with Image.open(path) as image:
            return image.width > 0 and image.height > 0
    except (UnidentifiedImageError, OSError, ValueError):
        return False


def _shorter_side_size(height: int, width: int, short_side: int) -> tuple[int, int]:
    """(height, width) scaled so that the shorter side is ``short_side``; no side below it."""
    scale = short_side / min(height, width)
    return max(short_side, round(height * scale)), max(short_side, round(width * scale))


class ContentSource:
    """The content images to train on: files found in a folder tree, or an in-memory batch.

    Build one with :meth:`from_folder` or :meth:`from_tensor`. Files whose header PIL cannot read
    are left out when the folder is scanned and listed in :attr:`skipped`.
    """

    def __init__(
        self,
        files: list[Path] | None,
        images: torch.Tensor | None,
        description: str,
        skipped: list[Path] | None = None,
    ) -> None:
        self._files = files
        self._images = images
        self.description = description
        self.skipped: list[Path] = list(skipped or [])

    @classmethod
    def from_folder(cls, folder: str | os.PathLike) -> ContentSource:
        """Every .jpg/.jpeg/.png/.webp/.bmp under ``folder`` (recursively, sorted by path)."""
        root = Path(folder)
        if not root.is_dir():
            raise InputImageError(f"content image folder not found: {root}")
        candidates = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        accepted = ", ".join(IMAGE_SUFFIXES)
        if not candidates:
            raise InputImageError(
                f"no training images in {root} (sub-folders searched too). Accepted extensions: {accepted}."
            )
        with ThreadPoolExecutor(_SCAN_THREADS) as pool:
            ok = list(pool.map(_readable, candidates))
        files = [p for p, good in zip(candidates, ok, strict=True) if good]
        skipped = [p for p, good in zip(candidates, ok, strict=True) if not good]
        if not files:
            raise InputImageError(
                f"none of the {len(candidates)} image files in {root} could be read "
                f"(first: {skipped[0]}). Accepted extensions: {accepted}."
            )
        return cls(files, None, f"{len(files)} images in {root}", skipped)

    @classmethod
    def from_tensor(cls, images: torch.Tensor) -> ContentSource:
        """An in-memory batch ``[N,C,H,W]`` in 0..1 (C = 1..4; greyscale and alpha are converted)."""
        if images.ndim != 4 or images.shape[0] == 0:
            raise InputImageError(
                f"content images must be a non-empty batch [N,C,H,W], got shape {tuple(images.shape)}"
            )
        rgb = to_rgb(images.detach()).to("cpu", torch.float32).contiguous()
        return cls(None, rgb, f"{rgb.shape[0]} in-memory images")

    def __len__(self) -> int:
        return len(self._files) if self._files is not None else int(self._images.shape[0])

    def fingerprint(self) -> str:
        """A sha256 that changes when the images (their paths and sizes, or the tensor) change."""
        digest = hashlib.sha256()
        if self._files is not None:
            root = os.path.commonpath([str(p) for p in self._files]) if len(self._files) > 1 else ""
            for path in self._files:
                digest.update(
                    f"{os.path.relpath(path, root) if root else path.name}\0{path.stat().st_size}\n".encode()
                )
        else:
            digest.update(str(tuple(self._images.shape)).encode())
            digest.update(self._images.numpy().tobytes())
        return digest.hexdigest()

    def name(self, index: int) -> str:
        """A human-readable name of image ``index`` (its path, or its position in the batch)."""
        return str(self._files[index]) if self._files is not None else f"image {index} of the batch"

    def load_resized(self, index: int, short_side: int) -> torch.Tensor:
        """Image ``index`` as ``[3,h,w]`` float32 0..1 with its shorter side ``short_side``.

        Raises :class:`InputImageError` when the file cannot be decoded.
        """
        if self._files is None:
            image = self._images[index : index + 1]
            size = _shorter_side_size(image.shape[-2], image.shape[-1], short_side)
            resized = F.interpolate(image, size=size, mode="bilinear", align_corners=False, antialias=True)
            return resized[0].clamp_(0, 1)
        path = self._files[index]
        try:
            with Image.open(path) as image:
                height, width = _shorter_side_size(image.height, image.width, short_side)
                image.draft("RGB", (width, height))
                rgb = image.convert("RGB")
            rgb = rgb.resize((width, height), Image.Resampling.BICUBIC, reducing_gap=3.0)
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise InputImageError(f"cannot decode {path}: {exc}") from exc
        array = np.asarray(rgb, dtype=np.uint8)
        return torch.from_numpy(array.copy()).permute(2, 0, 1).float().div_(255.0)


class CropSampler:
    """Which image and which crop every training sample uses, derived from the seed alone.

    Sample ``s`` belongs to epoch ``s // N`` and takes position ``s % N`` of that epoch's shuffled
    order, so a folder smaller than the run is cycled with a fresh order each pass. An image that
    fails to decode is replaced by the next one in the epoch's order and remembered in
    :attr:`failed` (thread-safe).
    """

    def __init__(self, source: ContentSource, image_size: int, seed: int) -> None:
        self.source = source
        self.image_size = image_size
        self.seed = seed
        self.failed: set[str] = set()
        self._lock = threading.Lock()
        self._orders: dict[int, np.ndarray] = {}

    def _order(self, epoch: int) -> np.ndarray:
        with self._lock:
            order = self._orders.get(epoch)
            if order is None:
                rng = np.random.default_rng([self.seed, _ORDER_STREAM, epoch])
                order = rng.permutation(len(self.source))
                self._orders = {e: o for e, o in self._orders.items() if e >= epoch - 1}
                self._orders[epoch] = order
            return order

    def sample(self, index: int) -> torch.Tensor:
        """Training sample ``index`` as ``[3,S,S]`` float32 0..1, S = image_size."""
        count = len(self.source)
        epoch, position = divmod(index, count)
        order = self._order(epoch)
        for attempt in range(count):
            image_index = int(order[(position + attempt) % count])
            try:
                image = self.source.load_resized(image_index, self.image_size)
                break
            except InputImageError:
                with self._lock:
                    self.failed.add(self.source.name(image_index))
        else:
            raise InputImageError(
                f"none of the {count} content images could be decoded ({self.source.description})"
            )
        rng = np.random.default_rng([self.seed, _CROP_STREAM, index])
        size = self.image_size
        top = int(rng.integers(0, image.shape[1] - size + 1))
        left = int(rng.integers(0, image.shape[2] - size + 1))
        return image[:, top : top + size, left : left + size]

    def batch(self, step: int, batch_size: int) -> torch.Tensor:
        """The ``[B,3,S,S]`` batch of training step ``step`` (0-based)."""
        first = step * batch_size
        return torch.stack([self.sample(first + i) for i in range(batch_size)])


class BatchStream:
    """Batches for steps ``start, start+1, ...`` loaded ahead by background threads.

    PIL decodes and resizes with the GIL released, so threads load in parallel without the
    pickling and process-start problems of DataLoader workers inside a host application. On CUDA
    batches are pinned and copied with ``non_blocking``. Use as a context manager.
    """

    def __init__(
        self,
        sampler: CropSampler,
        batch_size: int,
        *,
        start_step: int = 0,
        workers: int = 2,
        prefetch: int = 4,
        device: torch.device | str = "cpu",
    ) -> None:
        self.sampler = sampler
        self.batch_size = batch_size
        self.device = torch.device(device)
        self._pin = self.device.type == "cuda"
        self._next_step = start_step
        self._pool = (
            ThreadPoolExecutor(workers, thread_name_prefix="depthstyle-data") if workers > 0 else None
        )
        self._ahead: deque[Future[torch.Tensor]] = deque()
        self._prefetch = max(1, prefetch) if self._pool else 0

    def _load(self, step: int) -> torch.Tensor:
        batch = self.sampler.batch(step, self.batch_size)
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
