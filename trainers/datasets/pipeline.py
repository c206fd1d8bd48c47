"""Keeping the device busy: photos decoded ahead on worker threads, grouped into batches of one size,
results copied back while the next batch runs, and outputs encoded on the same threads.

A batch holds photos of one size only (the network takes a tensor): decoded photos wait in one bucket per
size until a bucket is full; when too many wait, the fullest bucket goes as it is, so memory stays
bounded however many sizes the dataset has. With ``--content-size`` and ``--crop`` every photo has
the same size and every batch is full.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path
from typing import TypeVar

import torch
from torch import Tensor

from ...depthstyle_core.errors import InputImageError
from .codec import failure_reason
from .plan import Task
from .records import SkippedRow

Item = TypeVar("Item")
Result = TypeVar("Result")


def bounded_map(
    pool: Executor, function: Callable[[Item], Result], items: Iterable[Item], ahead: int
) -> Iterator[Future[Result]]:
    """``function(item)`` on ``pool`` for each item, at most ``ahead`` submitted but not yet taken;
    the futures come in the order of ``items``."""
    pending: deque[Future[Result]] = deque()
    for item in items:
        pending.append(pool.submit(function, item))
        if len(pending) >= ahead:
            yield pending.popleft()
    while pending:
        yield pending.popleft()


@dataclass
class _Decoded:
    tasks: list[Task]
    pixels: Tensor | None
    failure: str | None


class PhotoBatches:
    """This process's tasks as batches ``[(task, [3,H,W] uint8), ...]`` of one photo size, decoded on
    ``pool`` by ``load(path)``; unreadable photos are collected in :attr:`failed`."""

    def __init__(
        self,
        tasks: list[Task],
        root: Path,
        load: Callable[[Path], Tensor],
        pool: Executor,
        batch_size: int,
        ahead: int,
    ) -> None:
        self.batch_size = batch_size
        self.failed: list[SkippedRow] = []
        self._buckets: dict[tuple[int, ...], list[tuple[Task, Tensor]]] = {}
        self._waiting = 0
        self._limit = max(2 * batch_size, ahead)

        def decode(group: list[Task]) -> _Decoded:
            path = root / group[0].photo
            try:
                return _Decoded(group, load(path), None)
            except InputImageError as exc:
                return _Decoded(group, None, failure_reason(exc, path, group[0].photo))

        groups = (list(group) for _, group in groupby(tasks, key=lambda task: task.photo))
        self._decoded = bounded_map(pool, decode, groups, ahead)

    def take_failed(self) -> list[SkippedRow]:
        """The unreadable photos found since the last call."""
        failed, self.failed = self.failed, []
        return failed

    def next(self) -> list[tuple[Task, Tensor]] | None:
        """The next batch, or None when every photo has been handed out."""
        while True:
            full = next((s for s, items in self._buckets.items() if len(items) >= self.batch_size), None)
            if full is not None:
                return self._take(full, self.batch_size)
            if self._waiting >= self._limit:
                return self._take(max(self._buckets, key=lambda size: len(self._buckets[size])))
            future = next(self._decoded, None)
            if future is None:
                return self._take(next(iter(self._buckets))) if self._buckets else None
            decoded = future.result()
            if decoded.pixels is None:
                self.failed.append(SkippedRow("photo", decoded.tasks[0].photo, decoded.failure or ""))
                continue
            bucket = self._buckets.setdefault(tuple(decoded.pixels.shape), [])
            bucket.extend((task, decoded.pixels) for task in decoded.tasks)
            self._waiting += len(decoded.tasks)

    def _take(self, size: tuple[int, ...], count: int | None = None) -> list[tuple[Task, Tensor]]:
        bucket = self._buckets[size]
        batch, rest = bucket[:count], bucket[len(bucket) if count is None else count :]
        if rest:
            self._buckets[size] = rest
        else:
            del self._buckets[size]
        self._waiting -= len(batch)
        return batch


def to_device(pixels: list[Tensor], device: torch.device) -> Tensor:
    """``[B,3,H,W]`` float 0..1 on ``device`` from uint8 photos: pinned and copied without waiting on
    CUDA, converted there (a quarter of the bytes of float cross the bus)."""
    batch = torch.stack(pixels)
    if device.type == "cuda":
        batch = batch.pin_memory()
    return batch.to(device, non_blocking=True).float().div_(255.0)


class HostCopy:
    """``[B,3,H,W]`` 0..1 results as ``[B,H,W,3]`` uint8 on the host, rounded as ``save_image`` rounds.
    On CUDA the copy runs behind the next batch's work; :meth:`wait` blocks until it has arrived."""

    def __init__(self, images: Tensor) -> None:
        pixels = images.mul(255.0).round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()
        self._event = None
        if pixels.device.type == "cuda":
            self.pixels = torch.empty(pixels.shape, dtype=torch.uint8, pin_memory=True)
            self.pixels.copy_(pixels, non_blocking=True)
            self._event = torch.cuda.Event()
            self._event.record()
        else:
            self.pixels = pixels

    def wait(self) -> Tensor:
        if self._event is not None:
            self._event.synchronize()
        return self.pixels
