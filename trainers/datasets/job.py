"""Stylise a whole folder of photos (Stylized-ImageNet style), on one process or many, resumable, each
image exactly once.

Every process lists the photos and paintings itself and checks that the others see the same; the
paintings' signals are computed once, shared out over the processes (:mod:`.paintings`). The outputs
still missing from the manifest are the work; each process takes every ``world_size``-th photo of them
(:func:`.plan.share_of`) and runs its pipeline (:mod:`.pipeline`). After every batch the processes
exchange what they finished (one collective on the host, bounded by the team's timeout): rank 0 appends
it to the manifest and shows progress, and all of them learn together whether to stop, so a process
that dies or hangs stops the others within the timeout. A rerun of the same command skips every image
in the manifest and does the rest; an image in flight when a process was killed is simply done again.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

import torch

from ...depthstyle_core.any_style.model_file import load_any_style_model
from ...depthstyle_core.any_style.stylize import runnable
from ...depthstyle_core.depth import DepthEstimator
from ...depthstyle_core.errors import DatasetError
from ...depthstyle_core.style_model import load_style_model
from ..data import unreadable_summary
from ..distributed import SINGLE, Team
from .codec import load_photo, write_image
from .config import DatasetConfig
from .painters import AnyPaintingPainter, Painter, TrainedStylePainter, weights_fingerprint
from .paintings import painting_table
from .pipeline import HostCopy, PhotoBatches, to_device
from .plan import Listing, Task, all_tasks, list_files, share_of
from .records import ManifestRow, ManifestWriter, SkippedRow, read_manifest, settings_conflict, write_settings

logger = logging.getLogger("depthstyle")
ProgressCallback = Callable[[int, int, object], None]
StopCallback = Callable[[], bool]


@dataclass
class DatasetResult:
    """What a run did. ``total`` outputs make the dataset (its photos x styles per image);
    ``already_done`` were finished before this run, ``written`` by it (all processes together)."""

    output_dir: Path
    total: int
    already_done: int
    written: int
    unreadable_photos: list[str] = field(default_factory=list)
    unreadable_paintings: list[str] = field(default_factory=list)
    stopped: bool = False
    seconds: float = 0.0

    @property
    def images_per_s(self) -> float:
        """Images written per second by this run (all processes), from its first batch to its end."""
        return self.written / self.seconds if self.seconds > 0 else 0.0

    @property
    def missing(self) -> int:
        """Outputs not there after this run: unreadable photos, or the run was stopped."""
        return self.total - self.already_done - self.written


def stylize_dataset(
    content_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    style_dir: str | os.PathLike | None = None,
    style_model: str | os.PathLike | None = None,
    any_model: str | os.PathLike | None = None,
    config: DatasetConfig | None = None,
    depth_model: DepthEstimator | None = None,
    model_dirs: Sequence[str | os.PathLike] = (),
    device: torch.device | str = "cpu",
    team: Team = SINGLE,
    on_progress: ProgressCallback | None = None,
    should_stop: StopCallback | None = None,
) -> DatasetResult:
    """Paint every photo under ``content_dir`` (recursively) with ``config.styles_per_image`` paintings
    drawn from ``style_dir``, or with the trained style model ``style_model``, into ``output_dir``, which
    mirrors ``content_dir``'s folders and file stems. Writes ``manifest.csv``, ``skipped.csv`` and
    ``stylize-dataset.json`` there (see :mod:`.records`).

    ``any_model``: an any-painting model file instead of the built-in network; model names are looked
    up in ``model_dirs``. ``depth_model`` is needed for ``config.depth_preserve`` > 0. ``team``: the
    processes of a torchrun job (see :func:`..distributed.join_torchrun`); all of them call this with the
    same arguments. ``on_progress(done, total, None)`` counts the images of this run;
    ``should_stop()`` True (on any process) ends the run after the images in flight are written.
    Unreadable photos and paintings are skipped and listed in the result and in ``skipped.csv``.
    """
    config = config or DatasetConfig()
    team = replace(
        team,
        role="stylising",
        after_failure="Every image written so far is kept in the manifest: run the same command again to "
        "finish the dataset.",
        same_inputs="the same photos and paintings at the same paths, the output folder on shared "
        "storage and the same options",
    )
    device = torch.device(device)
    out = Path(output_dir)
    _check_inputs(content_dir, out, style_dir, style_model, any_model, config, depth_model)
    photos = list_files(content_dir, config.extensions, "photo")
    paintings = list_files(style_dir, config.extensions, "painting") if style_dir is not None else None
    if style_model is not None:
        network = load_style_model(style_model, model_dirs=model_dirs)[0].to(device)
    else:
        network = runnable(load_any_style_model(any_model, device, model_dirs=model_dirs), device)
    settings = {
        **config.output_settings(),
        "network": weights_fingerprint(network),
        "depth_model": depth_model.name if depth_model is not None and config.depth_preserve > 0 else None,
    }
    inputs = {"photos": photos.fingerprint(), "paintings": paintings.fingerprint() if paintings else ""}
    team.check_same({"settings": json.dumps(settings, sort_keys=True), **inputs})
    _refuse_conflict(out, settings, team)
    with ThreadPoolExecutor(config.workers, thread_name_prefix="depthstyle-dataset") as pool:
        if paintings is not None:
            ahead = 2 * config.batch_for(device.type) + 2 * config.workers
            table = painting_table(paintings, network, config.style_size, pool, ahead, team)
            painter: Painter = AnyPaintingPainter(network, table, config, depth_model)
        else:
            painter = TrainedStylePainter(network, Path(style_model).name, config)
        _refuse_conflict(out, {"paintings": painter.record}, team)
        if config.styles_per_image > painter.pool_size:
            raise DatasetError(
                f"{config.styles_per_image} styles per image need as many different paintings, but only "
                f"{painter.pool_size} can be read: lower --styles-per-image or add paintings"
            )
        if painter.unreadable and team.is_main:
            names = [row.file for row in painter.unreadable]
            logger.warning("left out %s", unreadable_summary(names, what="painting"))
        tasks = all_tasks(
            photos.relative, config.seed, config.styles_per_image, painter.pool_size, config.suffix
        )
        run = _Run(photos, painter, config, device, pool, team, out)
        pending = run.all_pending(tasks, {**settings, "paintings": painter.record}, on_progress, should_stop)
    return DatasetResult(
        output_dir=out,
        total=len(tasks),
        already_done=len(tasks) - pending,
        written=run.written,
        unreadable_photos=sorted(row.file for row in run.unreadable),
        unreadable_paintings=[row.file for row in painter.unreadable],
        stopped=run.stopped,
        seconds=run.seconds,
    )


def _check_inputs(
    content_dir: str | os.PathLike,
    out: Path,
    style_dir: str | os.PathLike | None,
    style_model: str | os.PathLike | None,
    any_model: str | os.PathLike | None,
    config: DatasetConfig,
    depth_model: DepthEstimator | None,
) -> None:
    if (style_dir is None) == (style_model is None):
        raise DatasetError("give either a folder of paintings (style_dir) or a trained style model, not both")
    if style_model is not None and any_model is not None:
        raise DatasetError(
            "an any-painting model paints with paintings: give it with style_dir, not a style model"
        )
    if style_model is not None and config.styles_per_image > 1:
        raise DatasetError("a trained style model paints one style: styles per image must be 1")
    if style_model is not None and config.depth_preserve > 0:
        raise DatasetError("depth_preserve works with paintings (the any-painting network), not with a model")
    if config.depth_preserve > 0 and depth_model is None:
        raise DatasetError("depth_preserve above 0 needs a depth model (depth_model=load_depth_model(...))")
    photos, target = Path(content_dir).resolve(), out.resolve()
    if photos == target or photos in target.parents or target in photos.parents:
        raise DatasetError(
            f"the output folder {out} and the photo folder {content_dir} overlap: the outputs would be "
            "taken for photos, or replace them. Give an output folder outside the photo folder"
        )


def _refuse_conflict(out: Path, settings: dict, team: Team) -> None:
    """Raise on every process when rank 0 finds that ``out`` was made with other settings."""
    comparable = json.loads(json.dumps(settings))
    conflict = team.from_main(settings_conflict(out, comparable) if team.is_main else None)
    if conflict:
        raise DatasetError(conflict)


class _Run:
    """This process's share of the work, batch by batch, in step with the other processes."""

    def __init__(
        self,
        photos: Listing,
        painter: Painter,
        config: DatasetConfig,
        device: torch.device,
        pool: ThreadPoolExecutor,
        team: Team,
        out: Path,
    ) -> None:
        self.photos, self.painter, self.config, self.device = photos, painter, config, device
        self.pool, self.team, self.out = pool, team, out
        self.writer: ManifestWriter | None = None
        self.batch_size = config.batch_for(device.type)
        self.encoding: deque[Future[ManifestRow]] = deque()
        self.written = 0
        self.unreadable: list[SkippedRow] = []
        self.stopped = False
        self.seconds = 0.0

    def all_pending(
        self,
        tasks: list[Task],
        record: dict,
        on_progress: ProgressCallback | None,
        should_stop: StopCallback | None,
    ) -> int:
        """Do every task not yet in the manifest (this process its share); rank 0 keeps the records.
        Returns how many tasks were pending."""
        team = self.team
        if team.is_main:
            write_settings(self.out, record)
            self.writer = ManifestWriter(self.out)
            self.writer.add([], self.painter.unreadable)
        team.from_main(None)  # the manifest is whole before anyone reads it
        try:
            finished = set(read_manifest(self.out))
            team.check_same({"finished images in the manifest": str(len(finished))})
            pending = [task for task in tasks if task.output not in finished]
            self.go(share_of(pending, team.rank, team.world_size), len(pending), on_progress, should_stop)
        finally:
            if self.writer is not None:
                self.writer.close()
        if self.writer is not None:
            self.writer.finish([*self.painter.unreadable, *self.unreadable])
        # nobody leaves before the manifest is whole (a launcher would end the others)
        team.from_main(None)
        return len(pending)

    def go(
        self,
        tasks: list[Task],
        total: int,
        on_progress: ProgressCallback | None,
        should_stop: StopCallback | None,
    ) -> None:
        load = partial(load_photo, content_size=self.config.content_size, crop=self.config.crop)
        ahead = 2 * self.batch_size + 2 * self.config.workers
        batches = PhotoBatches(tasks, self.photos.root, load, self.pool, self.batch_size, ahead)
        copying: tuple[list[Task], HostCopy] | None = None
        start = time.perf_counter()
        with torch.inference_mode():
            while True:
                asked = bool(should_stop is not None and should_stop())
                batch = None if self.stopped or asked else batches.next()
                painted = None
                if batch is not None:
                    photos = to_device([pixels for _, pixels in batch], self.device)
                    tasks_here = [task for task, _ in batch]
                    images = self.painter.paint(photos, [task.painting for task in tasks_here])
                    painted = (tasks_here, HostCopy(images))
                if copying is not None:
                    self._encode(*copying)
                copying = painted
                finished = self._collect(drain=copying is None and batch is None)
                more = batch is not None or copying is not None or bool(self.encoding)
                reports = self.team.gather(
                    (finished, batches.take_failed(), asked, more), "sharing the finished images"
                )
                rows = [row for report in reports for row in report[0]]
                failed = [row for report in reports for row in report[1]]
                if self.writer is not None:
                    self.writer.add(rows, failed)
                self.written += len(rows)
                self.unreadable += failed
                self.stopped = self.stopped or any(report[2] for report in reports)
                if on_progress is not None:
                    on_progress(self.written, total, None)
                if not any(report[3] for report in reports):
                    break
        self.seconds = time.perf_counter() - start

    def _encode(self, tasks: list[Task], copy: HostCopy) -> None:
        """Hand a painted batch to the worker threads to be written."""
        pixels = copy.wait()
        for task, image in zip(tasks, pixels, strict=True):
            self.encoding.append(self.pool.submit(self._write, task, image))

    def _write(self, task: Task, pixels: torch.Tensor) -> ManifestRow:
        path = self.out / task.output
        try:
            write_image(pixels.numpy(), path, self.config.format, self.config.quality)
        except OSError as exc:
            raise DatasetError(
                f"cannot write {path}: {exc}. Free space or fix the folder's permissions, "
                "then run the same command again"
            ) from exc
        height, width = pixels.shape[:2]
        name = self.painter.name(task.painting)
        return ManifestRow(task.photo, name, task.k, self.config.strength, task.output, width, height)

    def _collect(self, drain: bool) -> list[ManifestRow]:
        """The rows of the images written so far, in order; all of them when ``drain``, and at least
        enough to keep the backlog of images waiting to be written bounded."""
        limit = 2 * self.batch_size + 2 * self.config.workers
        finished = []
        while self.encoding and (drain or self.encoding[0].done() or len(self.encoding) > limit):
            finished.append(self.encoding.popleft().result())
        return finished
