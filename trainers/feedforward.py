"""Train a feed-forward style network (Johnson et al. 2016) with a depth loss (Liu et al. 2017).

:func:`train_style` runs the loop: crops from a :class:`~.data.ContentSource`, Adam on a
TransformerNet, the :class:`~.objective.StyleObjective`, checkpoints, loss log, previews, cancel and
resume. On CUDA it uses bf16 autocast and channels-last; on the CPU plain fp32. The host is only
synchronised at log and checkpoint steps: non-finite losses are accumulated on the device and
checked there, and a checkpoint is never written from non-finite weights.

With a :class:`~.distributed.Team` of several processes (``torchrun``), each process trains on its
slice of every global batch, DistributedDataParallel averages the gradients, the loss calibration
and the logged losses are averaged over the processes, and all of them agree at every step on
whether to stop; only rank 0 writes files and previews. A team of one runs the same code.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from ..depthstyle_core.checkpoint import load_state_dict_strict
from ..depthstyle_core.depth import DepthEstimator
from ..depthstyle_core.errors import InputImageError, TrainingError
from ..depthstyle_core.images import save_image
from ..depthstyle_core.models.depth_anything import DepthAnythingV2
from ..depthstyle_core.models.transformer_net import TransformerNet
from ..depthstyle_core.models.vgg import VGG16Features
from .callbacks import LogCallback, PreviewCallback, ProgressCallback, StopCallback, TrainCallbacks
from .config import TrainConfig
from .data import BatchStream, ContentSource, CropSampler, unreadable_summary
from .distributed import SINGLE, Team
from .inputs import as_content_source, fingerprint_tensor
from .loss_log import TERMS, LossLog
from .loss_networks import autograd_ready, depth_network, device_precision
from .objective import StyleObjective, prepare_style_image
from .paths import TrainPaths
from .resume import load_resumable
from .run_files import write_checkpoint_files
from .state import TrainState

logger = logging.getLogger("depthstyle")
_OPTIMIZER_FLAGS = ("foreach", "fused", "capturable", "differentiable")
_SAME_ON_EVERY_PROCESS = (
    ("config", "settings"),
    ("style_sha256", "style image"),
    ("content_fingerprint", "content images"),
    ("depth_model", "depth model"),
)


@dataclass
class TrainResult:
    """What a finished, stopped or already-complete run leaves behind."""

    model_path: Path
    steps_done: int
    total_steps: int
    stopped: bool
    resumed_from: int | None
    losses: dict[str, float]
    records: list[dict[str, float]]
    skipped_files: list[str]
    seconds: float
    paths: TrainPaths


class _Run:
    """One training run: the network, optimiser, objective and bookkeeping between checkpoints."""

    def __init__(
        self,
        style_image: Tensor,
        source: ContentSource,
        paths: TrainPaths,
        config: TrainConfig,
        vgg: VGG16Features,
        depth_model: DepthAnythingV2 | None,
        depth_name: str,
        device: torch.device,
        callbacks: TrainCallbacks,
        resume: bool,
        team: Team,
    ) -> None:
        self.config, self.paths, self.device, self.callbacks = config, paths, device, callbacks
        self.team = team
        self.source = source
        self.sampler = CropSampler(source, config.image_size, config.seed)
        self.unreadable: set[str] = set()
        precision = device_precision(device, config.precision)
        self.autocast, self.memory_format = precision.autocast, precision.memory_format
        self.info = {
            "config": config.to_dict(),
            "style_sha256": fingerprint_tensor(style_image),
            "content_fingerprint": source.fingerprint(),
            "content": source.description,
            "depth_model": depth_name if config.depth_weight > 0 else "none",
            "world_size": team.world_size,
        }
        team.check_same({what: str(self.info[key]) for key, what in _SAME_ON_EVERY_PROCESS})
        vgg = autograd_ready(vgg).to(device, memory_format=self.memory_format)
        depth = (
            autograd_ready(depth_model).to(device)
            if depth_model is not None and config.depth_weight > 0
            else None
        )
        state, records = load_resumable(paths, config, self.info, team) if resume else (None, [])
        self.resumed_from = state.step if state else None
        self.step = state.step if state else 0
        self.saved_step = self.step if state else None
        self.log = LossLog(records)
        style = prepare_style_image(style_image, config.style_size).to(device)
        self.objective = StyleObjective(
            vgg,
            style,
            config.loss_weights(),
            depth_model=depth,
            depth_loss_mode=config.depth_loss,
            depth_resolution=config.depth_resolution,
            magnitudes=state.info.get("magnitudes") if state else None,
        )
        self.net = self._build_net(state)
        self.model = team.prepare_model(self.net, device)
        self.optimizer = self._build_optimizer(state)
        self.preview_image = self._preview_source() if config.preview_every and team.is_main else None
        self.sums = torch.zeros(len(TERMS), device=device)
        self.finite = torch.ones((), dtype=torch.bool, device=device)
        self.window_start, self.window_time = self.step, time.perf_counter()
        self.seconds_before = self.log.seconds
        self.run_start = time.perf_counter()

    def _preview_source(self) -> Tensor:
        """The first content image that decodes, shorter side ``image_size``, on the device."""
        for index in range(len(self.source)):
            try:
                return self.source.load_resized(index, self.config.image_size).unsqueeze(0).to(self.device)
            except InputImageError:
                self.sampler.failed.add(self.source.name(index))
        raise InputImageError(f"none of the content images could be decoded ({self.source.description})")

    def _build_net(self, state: TrainState | None) -> TransformerNet:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.config.seed)
            net = TransformerNet(self.config.net_config)
        if state is not None:
            load_state_dict_strict(net, state.net, what="the style network", source=str(self.paths.state))
        return net.to(self.device, memory_format=self.memory_format).train()

    def _build_optimizer(self, state: TrainState | None) -> torch.optim.Adam:
        optimizer = torch.optim.Adam(self.net.parameters(), lr=self.config.lr)
        if state is not None:
            for saved, fresh in zip(state.optimizer["param_groups"], optimizer.param_groups, strict=True):
                saved.update({flag: fresh[flag] for flag in _OPTIMIZER_FLAGS if flag in fresh})
            optimizer.load_state_dict(state.optimizer)
        return optimizer

    def train_step(self, batch: Tensor) -> None:
        """One optimiser step on ``batch``; nothing here waits for the device."""
        batch = batch.contiguous(memory_format=self.memory_format)
        if self.objective.needs_calibration:
            with torch.no_grad(), self.autocast():
                self.objective.calibrate(self.net(batch), batch, self.team.mean_terms)
        with self.autocast():
            with self.team.talking("starting a step"):
                stylised = self.model(batch)
            total, weighted = self.objective(stylised, batch)
        self.optimizer.zero_grad(set_to_none=True)
        with self.team.talking("averaging the gradients"):
            total.backward()
        self.optimizer.step()
        self.step += 1
        values = [total.detach()] + [
            weighted[t] if t in weighted else torch.zeros_like(total) for t in TERMS[1:]
        ]
        self.sums += torch.stack(values).float()
        self.finite &= torch.isfinite(total.detach())

    def check_finite(self) -> None:
        """Raise :class:`TrainingError` if any loss since the start, or any weight, is not finite (on
        any process: all of them raise together)."""
        weights_ok = torch.stack([p.isfinite().all() for p in self.net.parameters()]).all()
        if self.team.all_true(self.finite & weights_ok):
            return
        kept = (
            f"The last good checkpoint (step {self.saved_step}) is kept unchanged: {self.paths.model}"
            if self.saved_step is not None
            else "No checkpoint had been written yet."
        )
        raise TrainingError(
            f"the training loss became NaN or infinite between step {self.window_start} and step "
            f"{self.step}. {kept} Lower the learning rate or check the content images, then resume "
            "or restart."
        )

    def write_log_record(self) -> None:
        """Average the losses since the last record, check them, append a record and tell the host."""
        if self.step == self.window_start:
            return
        self.check_finite()
        count = self.step - self.window_start
        averages = (self.team.mean(self.sums) / count).tolist()
        now = time.perf_counter()
        record = self.log.add(
            self.step,
            dict(zip(TERMS, averages, strict=True)),
            seconds=self.seconds_before + now - self.run_start,
            steps_per_second=count / max(now - self.window_time, 1e-9),
        )
        self.sums.zero_()
        self.window_start, self.window_time = self.step, now
        self.callbacks.log(record)

    def checkpoint(self) -> None:
        """Write state, style model, loss log and curve for the current step (weights must be finite).
        Every process takes part; rank 0 writes."""
        self.write_log_record()
        self.check_finite()
        unreadable = self.team.union(self.unreadable | self.sampler.failed)
        if self.team.is_main and len(unreadable) > len(self.unreadable):
            logger.warning(
                "DepthStyle training: skipping %s; see %s",
                unreadable_summary(unreadable),
                self.paths.log_json,
            )
        self.unreadable = unreadable
        if self.team.is_main:
            info = {
                **self.info,
                "magnitudes": self.objective.balancer.magnitudes,
                "seconds": self.log.seconds,
            }
            write_checkpoint_files(
                self.paths, self.step, self.net, self.optimizer, self.config, info, self.log, self.unreadable
            )
        self.saved_step = self.step

    def preview(self) -> Tensor:
        """The fixed preview image stylised by the current network, ``[1,3,H,W]`` 0..1 on the CPU."""
        self.net.train(False)
        with torch.no_grad(), self.autocast():
            image = self.net(self.preview_image.contiguous(memory_format=self.memory_format))
        self.net.train()
        image = image.float().clamp(0, 1).cpu()
        save_image(image, self.paths.preview)
        return image

    def result(self, stopped: bool) -> TrainResult:
        last = self.log.records[-1] if self.log.records else {}
        return TrainResult(
            model_path=self.paths.model,
            steps_done=self.step,
            total_steps=self.config.iterations,
            stopped=stopped,
            resumed_from=self.resumed_from,
            losses={t: last[t] for t in TERMS if t in last},
            records=list(self.log.records),
            skipped_files=sorted(self.unreadable | self.sampler.failed),
            seconds=self.log.seconds,
            paths=self.paths,
        )

    def run(self) -> TrainResult:
        """Train until ``iterations`` or until the host stops us; checkpoint on the way out."""
        config = self.config
        threads = (
            config.loader_threads
            if config.loader_threads is not None
            else (4 if self.device.type == "cuda" else 1)
        )
        stopped = False
        team = self.team
        with BatchStream(
            self.sampler,
            config.batch_size,
            start_step=self.step,
            workers=threads,
            device=self.device,
            rank=team.rank,
            world_size=team.world_size,
        ) as stream:
            try:
                while self.step < config.iterations:
                    if team.any(self.callbacks.stop_requested()):
                        stopped = True
                        break
                    self.train_step(next(stream))
                    if self.step % config.log_every == 0:
                        self.write_log_record()
                    if self.step % config.checkpoint_every == 0 or self.step == config.iterations:
                        self.checkpoint()
                    due = (
                        team.is_main
                        and config.preview_every
                        and (self.step % config.preview_every == 0 or self.step == config.iterations)
                    )
                    self.callbacks.progress(self.step, config.iterations, self.preview() if due else None)
            except TrainingError:
                raise
            except BaseException as exc:
                self._save_on_the_way_out(exc)
                raise
        if self.step not in (0, self.saved_step):
            self.checkpoint()
        return self.result(stopped)

    def _save_on_the_way_out(self, exc: BaseException) -> None:
        """Checkpoint after an exception (e.g. the host's interrupt) unless nothing changed or the
        weights are no longer good; a failure to save is attached to ``exc`` as a note. With several
        processes nothing is written: a checkpoint needs all of them, and the others are elsewhere."""
        if self.step in (0, self.saved_step):
            return
        if self.team.is_distributed:
            kept = f"step {self.saved_step}" if self.saved_step is not None else "none yet"
            exc.add_note(f"DepthStyle kept the last checkpoint ({kept}) of this multi-process run.")
            return
        try:
            self.checkpoint()
        except Exception as save_error:  # the original exception matters more
            exc.add_note(f"DepthStyle could not save a checkpoint at step {self.step}: {save_error}")


def train_style(
    style_image: Tensor,
    content: ContentSource | Tensor | str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    config: TrainConfig | None = None,
    vgg: VGG16Features,
    depth_model: DepthAnythingV2 | DepthEstimator | None = None,
    device: torch.device | str = "cpu",
    resume: bool = False,
    on_progress: ProgressCallback | None = None,
    on_preview: PreviewCallback | None = None,
    on_log: LogCallback | None = None,
    should_stop: StopCallback | None = None,
    team: Team | None = None,
) -> TrainResult:
    """Train a style network for ``style_image`` (``[1,C,H,W]`` 0..1) on ``content`` and write it to
    ``out_path`` (a ``.safetensors`` style model, loadable with ``load_style_model``).

    ``content``: a :class:`ContentSource`, an image batch ``[N,C,H,W]`` or a folder path. ``vgg``: the
    loss network (``load_vgg16()``). ``depth_model``: a Depth Anything network or the estimator from
    ``load_depth_model``; needed only when ``config.depth_weight > 0``. Both are frozen, moved to
    ``device`` and switched to eval mode. ``resume``: continue from ``<name>.state.safetensors`` if it
    exists (same settings required), else start fresh; without ``resume`` an existing run's files are
    overwritten from the first checkpoint on.

    ``team``: the processes that train this style together (:func:`~.distributed.join_torchrun`);
    None for this process alone. Every process calls ``train_style`` with the same arguments and its
    own ``device``; ``config.batch_size`` is per process; only rank 0 writes files and previews.

    Raises :class:`TrainingError` when the loss becomes NaN/inf (the last checkpoint is kept) or the
    saved run cannot be resumed; exceptions from the callbacks propagate after a checkpoint.
    """
    config = config or TrainConfig()
    device = torch.device(device)
    network, depth_name = depth_network(depth_model)
    if config.depth_weight > 0 and network is None:
        raise ValueError(
            f"depth_weight is {config.depth_weight} but no depth model was given: pass "
            "depth_model=load_depth_model(...), or set depth_weight=0 to train without the depth loss"
        )
    paths = TrainPaths.for_model(out_path)
    callbacks = TrainCallbacks(on_progress, on_preview, on_log, should_stop)
    with torch.inference_mode(False), torch.enable_grad():
        source = as_content_source(content.clone() if isinstance(content, Tensor) else content)
        run = _Run(
            style_image.clone(),
            source,
            paths,
            config,
            vgg,
            network,
            depth_name,
            device,
            callbacks,
            resume,
            team or SINGLE,
        )
        if run.step >= config.iterations:
            return run.result(stopped=False)
        return run.run()
