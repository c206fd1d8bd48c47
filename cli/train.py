"""``depthstyle train``: train a feed-forward style network with a console progress bar."""

from __future__ import annotations

import argparse
import signal
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from ..trainers.distributed import Team

from .common import EXIT_ERROR, EXIT_INTERRUPTED, add_collective_timeout
from .progress import ConsoleProgress, StopOnSignals, warnings_below_the_bar

_TRAIN_SETTINGS = (
    ("iterations", int, "training steps (default 40000, as the paper)"),
    (
        "batch_size",
        int,
        "crops per step and process (default 4); under torchrun the global batch is N x this",
    ),
    ("image_size", int, "training crop size in pixels (default 256)"),
    ("style_size", int, "the style image's longer side in pixels, 0 = as it is (default 512)"),
    ("lr", float, "Adam learning rate (default 1e-3)"),
    ("seed", int, "random seed (default 0)"),
    ("content_weight", float, "default 1"),
    ("style_weight", float, "default 5"),
    ("depth_weight", float, "default 5; 0 trains the Johnson baseline without a depth network"),
    ("tv_weight", float, "total variation (default 1e-6)"),
    ("checkpoint_every", int, "save a checkpoint every N steps (default 1000)"),
)


def _train_config(args: argparse.Namespace):
    """TrainConfig from the options given; the rest keep TrainConfig's defaults (the paper's)."""
    from ..depthstyle_core.models.transformer_net import TransformerNetConfig
    from ..trainers import TrainConfig

    given = {name: getattr(args, name) for name, _, _ in _TRAIN_SETTINGS if getattr(args, name) is not None}
    if given.get("style_size") == 0:
        given["style_size"] = None
    return TrainConfig(
        **given,
        weight_mode=args.weight_mode,
        depth_loss=args.depth_loss,
        net_config=TransformerNetConfig(norm=args.norm, upsample=args.upsample, output=args.output_layer),
    )


def _train_command(args: argparse.Namespace) -> int:
    from ..trainers.distributed import SINGLE, join_torchrun, launched_by_torchrun

    with warnings_below_the_bar():
        if not launched_by_torchrun():
            return _train(args, SINGLE, args.device, None)
        with (
            join_torchrun(args.device, args.collective_timeout) as (team, device),
            StopOnSignals((signal.SIGINT, signal.SIGTERM)) as stop,
        ):
            return _train(args, team, device, stop)


def _train(
    args: argparse.Namespace, team: Team, device: str | torch.device, stop: StopOnSignals | None
) -> int:
    """Train on this process; only rank 0 (the only process without torchrun) talks."""
    from ..depthstyle_core.depth import load_depth_model
    from ..depthstyle_core.errors import DepthStyleError, DistributedTrainingError
    from ..depthstyle_core.images import load_image
    from ..depthstyle_core.models.vgg import load_vgg16
    from ..trainers import train_style
    from ..trainers.data import unreadable_summary

    def say(text: str, end: str = "\n") -> None:
        if team.is_main:
            print(text, end=end, file=sys.stderr, flush=True)

    config = _train_config(args)
    losses: dict[str, float] = {}
    on_progress = ConsoleProgress(
        details=lambda: " ".join(f"{k} {v:.3g}" for k, v in losses.items()), enabled=team.is_main
    )

    def on_log(record: dict[str, float]) -> None:
        losses.clear()
        losses.update({k: record[k] for k in ("content", "style", "depth") if k in record})

    try:
        vgg = load_vgg16(model_dirs=[args.models_dir / "vgg"])
        depth = None
        if config.depth_weight > 0:
            depth = load_depth_model(args.depth_model, model_dirs=[args.models_dir / "depth"])
            say(f"depth model: {depth.name} (licence {depth.licence})")
        if team.is_distributed:
            crops = team.world_size * config.batch_size
            say(f"{team.world_size} processes x batch {config.batch_size} = {crops} crops per step")
        result = train_style(
            load_image(args.style),
            args.content_dir,
            args.output,
            config=config,
            vgg=vgg,
            depth_model=depth,
            device=device,
            resume=args.resume,
            on_progress=on_progress,
            on_log=on_log,
            should_stop=stop,
            team=team,
        )
    except KeyboardInterrupt:
        saved = "the last checkpoint is kept" if team.is_distributed else "a checkpoint was saved"
        say(f"\ninterrupted: {saved}; run again with --resume to continue")
        return EXIT_INTERRUPTED
    except DepthStyleError as exc:
        if team.is_main or isinstance(exc, DistributedTrainingError):
            raise
        return EXIT_ERROR  # every process met the same error: rank 0 reports it
    say("")
    if result.skipped_files:
        say(f"skipped {unreadable_summary(result.skipped_files)} (see {result.paths.log_json})")
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
        f"style model: {result.model_path} ({result.steps_done}/{result.total_steps} steps); "
        f"loss curve: {result.paths.loss_curve}"
    )
    return 0


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "train",
        help="train a new style model (depth-aware by default)",
        description="Train a feed-forward style network on a folder of photos, with VGG-16 content and "
        "style losses and a Depth Anything depth loss (Liu et al. 2017). Weights are scale-free: "
        "content 1 / style 5 / depth 5 are the paper's. Ctrl+C saves a checkpoint; --resume continues.",
    )
    parser.add_argument("--style", required=True, help="the style image")
    parser.add_argument("--content-dir", required=True, help="folder of photos (searched recursively)")
    parser.add_argument("-o", "--output", required=True, help="the .safetensors style model to write")
    for name, kind, text in _TRAIN_SETTINGS:
        parser.add_argument("--" + name.replace("_", "-"), type=kind, default=None, help=text)
    parser.add_argument("--weight-mode", choices=("normalized", "raw"), default="normalized")
    parser.add_argument("--depth-loss", choices=("ssi", "l2"), default="ssi")
    parser.add_argument("--depth-model", default="small", help="small (default), base, large or a path")
    parser.add_argument("--norm", choices=("instance", "batch"), default="instance")
    parser.add_argument("--upsample", choices=("nearest", "transposed"), default="nearest")
    parser.add_argument("--output-layer", choices=("linear", "tanh"), default="linear")
    parser.add_argument("--resume", action="store_true", help="continue from the saved state")
    add_collective_timeout(parser)
    parser.set_defaults(run=_train_command)
