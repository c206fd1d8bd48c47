"""What every training run does around its steps, whatever network it trains: resume, loss log, NaN
checks, checkpoints, previews, the host's stop, and agreement between processes.

A trainer subclasses :class:`TrainingLoop` and supplies the network-specific parts: building the
network and its objective, one optimiser step (:meth:`~TrainingLoop.train_step`), the batches, the
preview and how the model file is written. The host is only synchronised at log and checkpoint
steps: non-finite losses are accumulated on the device and checked there, and a checkpoint is never
written from non-finite weights. With a :class:`~..distributed.Team` of several processes, all of them
agree at every step on whether to stop, the logged losses are averaged over them, and only rank 0
writes files and previews.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ...depthstyle_core.errors import TrainingError
from ..data import BatchStream, unreadable_summary
from ..distributed import Team
from .callbacks import TrainCallbacks
from .files import write_checkpoint_files
from .loss_log import LossLog
from .loss_networks import device_precision
from .paths import TrainPaths
from .resume import MustMatch, load_resumable
from .settings import RunSettings
from .state import TrainState

logger = logging.getLogger("depthstyle")
_OPTIMIZER_FLAGS = ("foreach", "fused", "capturable", "differentiable")


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


def restored_adam(
    parameters: Iterator[nn.Parameter], lr: float, state: TrainState | None
) -> torch.optim.Adam:
    """Adam over ``parameters``, with the saved optimiser state when resuming (this machine's
    implementation flags kept, so a state saved on a GPU resumes on a CPU and back)."""
    optimizer = torch.optim.Adam(parameters, lr=lr)
    if state is not None:
        for saved, fresh in zip(state.optimizer["param_groups"], optimizer.param_groups, strict=True):
            saved.update({flag: fresh[flag] for flag in _OPTIMIZER_FLAGS if flag in fresh})
        optimizer.load_state_dict(state.optimizer)
    return optimizer


class TrainingLoop:
    """One run between checkpoints. The subclass's ``__init__`` calls this one first, then sets
    :attr:`net` (the trained network), :attr:`optimizer`, :attr:`objective` (whose
    ``balancer.magnitudes`` are saved for resuming) and :attr:`sampler` (the batches of every step and
    the files that failed), and implements the methods that raise ``NotImplementedError`` here.

    ``info`` describes the run for the checkpoint and the log; ``same_on_every_process`` maps info keys
    to what they are (every process must see the same); ``must_match`` the info keys a resumed run
    must share with the saved one; ``terms`` the logged loss terms, ``"total"`` first.
    """

    net: nn.Module
    optimizer: torch.optim.Optimizer
    objective: Any
    sampler: Any
    file_noun = "content file"
    """How the console names one unreadable training file."""
    write_model: Callable[..., Path]
    """``write_model(path, net, extra_metadata=...)``: how the model file is written."""

    def __init__(
        self,
        config: RunSettings,
        paths: TrainPaths,
        device: torch.device,
        callbacks: TrainCallbacks,
        team: Team,
        info: dict[str, Any],
        *,
        resume: bool,
        same_on_every_process: Mapping[str, str],
        must_match: MustMatch,
        terms: tuple[str, ...],
    ) -> None:
        self.config, self.paths, self.device = config, paths, device
        self.callbacks, self.team = callbacks, team
        self.terms = terms
        precision = device_precision(device, config.precision)
        self.autocast, self.memory_format = precision.autocast, precision.memory_format
        self.info = info
        team.check_same({what: str(info[key]) for key, what in same_on_every_process.items()})
        self.state, records = load_resumable(paths, config, info, team, must_match) if resume else (None, [])
        self.resumed_from = self.state.step if self.state else None
        self.step = self.state.step if self.state else 0
        self.saved_step = self.step if self.state else None
        self.log = LossLog(records, terms)
        self.unreadable: set[str] = set()
        self.sums = torch.zeros(len(terms), device=device)
        self.finite = torch.ones((), dtype=torch.bool, device=device)
        self.seconds_before = self.log.seconds
        self.window_start, self.window_time = self.step, time.perf_counter()
        self.run_start = self.window_time

    @property
    def saved_magnitudes(self) -> dict[str, float] | None:
        """The calibration magnitudes of the saved run, if resuming."""
        return self.state.info.get("magnitudes") if self.state else None

    # The network-specific parts.

    def train_step(self, batch: Tensor) -> None:
        """One optimiser step on ``batch``, ending with :meth:`descend`. Nothing here should wait for
        the device."""
        raise NotImplementedError

    def preview(self) -> Tensor:
        """Write and return the preview of the current network, ``[1,3,H,W]`` 0..1 on the CPU."""
        raise NotImplementedError

    def model_metadata(self) -> dict[str, str]:
        """What this trainer adds to the model file's metadata."""
        raise NotImplementedError

    # The shared parts.

    def batches(self, workers: int) -> AbstractContextManager[Iterator[Tensor]]:
        """The batches of steps ``self.step``, ``self.step + 1``, ... for this process."""
        return BatchStream(
            self.sampler,
            self.config.batch_size,
            start_step=self.step,
            workers=workers,
            device=self.device,
            rank=self.team.rank,
            world_size=self.team.world_size,
        )

    def failed_files(self) -> set[str]:
        """The training files that could not be decoded so far (this process)."""
        return set(self.sampler.failed)

    def descend(self, total: Tensor, weighted: Mapping[str, Tensor]) -> None:
        """The optimiser step on ``total`` (gradients averaged over the processes), then counting it:
        its losses join the running sums of the log interval."""
        self.optimizer.zero_grad(set_to_none=True)
        with self.team.talking("averaging the gradients"):
            total.backward()
        self.optimizer.step()
        self.step += 1
        values = [total.detach()] + [
            weighted[t] if t in weighted else torch.zeros_like(total) for t in self.terms[1:]
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
            f"{self.step}. {kept} Lower the learning rate or check the training images, then resume "
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
            dict(zip(self.terms, averages, strict=True)),
            seconds=self.seconds_before + now - self.run_start,
            steps_per_second=count / max(now - self.window_time, 1e-9),
        )
        self.sums.zero_()
        self.window_start, self.window_time = self.step, now
        self.callbacks.log(record)

    def checkpoint(self) -> None:
        """Write state, model, loss log and curve for the current step (weights must be finite).
        Every process takes part; rank 0 writes."""
        self.write_log_record()
        self.check_finite()
        unreadable = self.team.union(self.unreadable | self.failed_files())
        if self.team.is_main and len(unreadable) > len(self.unreadable):
            logger.warning(
                "DepthStyle training: skipping %s; see %s",
                unreadable_summary(unreadable, what=self.file_noun),
                self.paths.log_json,
            )
        self.unreadable = unreadable
        if self.team.is_main:
            magnitudes = self.objective.balancer.magnitudes
            info = {**self.info, "magnitudes": magnitudes, "seconds": self.log.seconds}

            def save_model(path: Path, metadata: dict[str, str]) -> Path:
                return self.write_model(path, self.net, extra_metadata=metadata)

            write_checkpoint_files(
                self.paths,
                self.step,
                self.net,
                self.optimizer,
                self.config,
                info,
                self.log,
                self.unreadable,
                save_model,
                self.model_metadata(),
            )
        self.saved_step = self.step

    def result(self, stopped: bool) -> TrainResult:
        last = self.log.records[-1] if self.log.records else {}
        return TrainResult(
            model_path=self.paths.model,
            steps_done=self.step,
            total_steps=self.config.iterations,
            stopped=stopped,
            resumed_from=self.resumed_from,
            losses={t: last[t] for t in self.terms if t in last},
            records=list(self.log.records),
            skipped_files=sorted(self.unreadable | self.failed_files()),
            seconds=self.log.seconds,
            paths=self.paths,
        )

    def run(self) -> TrainResult:
        """Train until ``iterations`` or until the host stops us; checkpoint on the way out. A run
        that is already complete returns at once."""
        if self.step >= self.config.iterations:
            return self.result(stopped=False)
        config = self.config
        threads = (
            config.loader_threads
            if config.loader_threads is not None
            else (4 if self.device.type == "cuda" else 1)
        )
        stopped = False
        team = self.team
        self.window_start, self.window_time = self.step, time.perf_counter()
        self.run_start = time.perf_counter()
        with self.batches(threads) as stream:
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
