"""What the training commands (``train``, ``train-any``) share on the console: the settings options,
joining the processes under ``torchrun``, the progress bar, stop signals, the errors and the closing
lines. Each command supplies a function that loads its networks and calls its trainer."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .common import EXIT_ERROR, EXIT_INTERRUPTED
from .progress import ConsoleProgress, StopOnSignals, warnings_below_the_bar

if TYPE_CHECKING:
    import torch

    from ..trainers.distributed import Team
    from ..trainers.run.loop import TrainResult

Setting = tuple[str, type, str]
"""``(config field, type, help)`` of a numeric option: ``--field-name`` on the command line."""


def add_settings(parser: argparse.ArgumentParser, settings: Sequence[Setting]) -> None:
    """One option per setting, default None (the config's own default applies)."""
    for name, kind, text in settings:
        parser.add_argument("--" + name.replace("_", "-"), type=kind, default=None, help=text)


def given_settings(args: argparse.Namespace, settings: Sequence[Setting]) -> dict[str, Any]:
    """The settings given on the command line."""
    return {name: getattr(args, name) for name, _, _ in settings if getattr(args, name) is not None}


@dataclass
class Console:
    """What a training function gets from the command: messages (rank 0 only) and the trainer's hooks."""

    team: Team
    on_progress: ConsoleProgress
    should_stop: StopOnSignals | None
    losses: dict[str, float]
    shown_terms: tuple[str, ...]

    def say(self, text: str, end: str = "\n") -> None:
        if self.team.is_main:
            print(text, end=end, file=sys.stderr, flush=True)

    def on_log(self, record: dict[str, float]) -> None:
        self.losses.clear()
        self.losses.update({k: record[k] for k in self.shown_terms if k in record})

    def hooks(self) -> dict[str, Any]:
        """The keyword arguments that connect a trainer to this console."""
        return {
            "on_progress": self.on_progress,
            "on_log": self.on_log,
            "should_stop": self.should_stop,
            "team": self.team,
        }

    def say_global_batch(self, batch_size: int) -> None:
        if self.team.is_distributed:
            crops = self.team.world_size * batch_size
            self.say(f"{self.team.world_size} processes x batch {batch_size} = {crops} crops per step")


def load_loss_networks(args: argparse.Namespace, depth_weight: float, console: Console) -> tuple[Any, Any]:
    """VGG-16 from ``<models-dir>/vgg``, and ``--depth-model`` when the depth loss is on (None when off)."""
    from ..depthstyle_core.depth import load_depth_model
    from ..depthstyle_core.models.vgg import load_vgg16

    vgg = load_vgg16(model_dirs=[args.models_dir / "vgg"])
    if depth_weight <= 0:
        return vgg, None
    depth = load_depth_model(args.depth_model, model_dirs=[args.models_dir / "depth"])
    console.say(f"depth model: {depth.name} (licence {depth.licence})")
    return vgg, depth


Trainer = Callable[[argparse.Namespace, "Team", "str | torch.device", Console], "TrainResult"]


@dataclass(frozen=True)
class Wording:
    """How a command names its results: the model file, the losses beside the bar, a training file."""

    model_kind: str
    shown_terms: tuple[str, ...]
    file_noun: str


def run_training(args: argparse.Namespace, train: Trainer, wording: Wording) -> int:
    """Run ``train`` in this process, or in each process that ``torchrun`` started."""
    from ..trainers.distributed import SINGLE, join_torchrun, launched_by_torchrun

    with warnings_below_the_bar():
        if not launched_by_torchrun():
            return _train(args, train, SINGLE, args.device, None, wording)
        with (
            join_torchrun(args.device, args.collective_timeout) as (team, device),
            StopOnSignals((signal.SIGINT, signal.SIGTERM)) as stop,
        ):
            return _train(args, train, team, device, stop, wording)


def _train(
    args: argparse.Namespace,
    train: Trainer,
    team: Team,
    device: str | torch.device,
    stop: StopOnSignals | None,
    wording: Wording,
) -> int:
    """Train on this process; only rank 0 (the only process without torchrun) talks."""
    from ..depthstyle_core.errors import DepthStyleError, DistributedTrainingError
    from ..trainers.data import unreadable_summary

    losses: dict[str, float] = {}
    progress = ConsoleProgress(
        details=lambda: " ".join(f"{k} {v:.3g}" for k, v in losses.items()), enabled=team.is_main
    )
    console = Console(team, progress, stop, losses, wording.shown_terms)
    say = console.say
    try:
        result = train(args, team, device, console)
    except KeyboardInterrupt:
        saved = "the last checkpoint is kept" if team.is_distributed else "a checkpoint was saved"
        say(f"\ninterrupted: {saved}; run again with --resume to continue")
        return EXIT_INTERRUPTED
    except DepthStyleError as exc:
        if team.is_main or isinstance(exc, DistributedTrainingError):
            raise
        return EXIT_ERROR  # every process met the same error: rank 0 reports it
    except ValueError as exc:  # settings that cannot work, named by the config or the trainer
        say(f"depthstyle {args.command}: error: {exc}")
        return EXIT_ERROR
    say("")
    if result.skipped_files:
        skipped = unreadable_summary(result.skipped_files, what=wording.file_noun)
        say(f"skipped {skipped} (see {result.paths.log_json})")
    if stop is not None and stop.received is not None:
        name = signal.Signals(stop.received).name
        trained = result.steps_done != (result.resumed_from or 0)
        say(
            f"stopped by {name} at step {result.steps_done}/{result.total_steps}: "
            f"{'a checkpoint was saved' if trained else 'nothing new to save'}; "
            "run the same command with --resume to continue"
        )
        return 128 + stop.received
    say(
        f"{wording.model_kind}: {result.model_path} ({result.steps_done}/{result.total_steps} steps); "
        f"loss curve: {result.paths.loss_curve}"
    )
    return 0
