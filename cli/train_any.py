"""``depthstyle train-any``: train or fine-tune the any-painting network with the depth loss."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from .common import add_collective_timeout
from .training_run import (
    Console,
    Wording,
    add_settings,
    given_settings,
    load_loss_networks,
    run_training,
)

if TYPE_CHECKING:
    import torch

    from ..trainers.any_style.config import AnyTrainConfig
    from ..trainers.distributed import Team
    from ..trainers.run.loop import TrainResult

_SETTINGS = (
    ("iterations", int, "training steps (default 20000: a fine-tune of the built-in network)"),
    (
        "batch_size",
        int,
        "photo-painting pairs per step and process (default 8); under torchrun the global batch is N x this",
    ),
    ("image_size", int, "training crop size in pixels (default 256)"),
    ("load_size", int, "photos and paintings are resized to this shorter side before the crop (default 512)"),
    ("lr", float, "Adam learning rate (default 1e-4)"),
    ("lr_decay", float, "the learning rate of step k is lr / (1 + lr_decay * k) (default 5e-5)"),
    ("seed", int, "random seed of the data order, the crops and --init random (default 0)"),
    ("content_weight", float, "default 1"),
    ("style_weight", float, "default 3"),
    ("contrastive_weight", float, "style-signal contrastive loss, needs 2+ paintings per step (default 3)"),
    ("depth_weight", float, "default 5; 0 trains without a depth network"),
    ("checkpoint_every", int, "save a checkpoint every N steps (default 1000)"),
)
_WORDING = Wording(
    model_kind="any-painting model",
    shown_terms=("content", "style", "contrastive", "depth"),
    file_noun="image file",
)


def _init_weights(args: argparse.Namespace) -> str:
    """``builtin``, ``random``, or the full path of the model file named by ``--init`` (a path or a
    file in ``<models-dir>/any_style/``)."""
    from ..depthstyle_core.hub.resolve import resolve_model_file
    from ..trainers.any_style.config import BUILTIN, RANDOM

    if args.init in (BUILTIN, RANDOM):
        return args.init
    return str(resolve_model_file(args.init, model_dirs=[args.models_dir / "any_style"]))


def _config(args: argparse.Namespace) -> AnyTrainConfig:
    from ..trainers.any_style.config import AnyTrainConfig

    given = given_settings(args, _SETTINGS)
    return AnyTrainConfig(
        **given, init=_init_weights(args), weight_mode=args.weight_mode, depth_loss=args.depth_loss
    )


def _train(args: argparse.Namespace, team: Team, device: str | torch.device, console: Console) -> TrainResult:
    from ..trainers.any_style.job import train_any_style

    config = _config(args)
    vgg, depth = load_loss_networks(args, config.depth_weight, console)
    console.say(f"starting weights: {config.init}")
    console.say_global_batch(config.batch_size)
    return train_any_style(
        args.content_dir,
        args.style_dir,
        args.output,
        config=config,
        vgg=vgg,
        depth_model=depth,
        device=device,
        resume=args.resume,
        **console.hooks(),
    )


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "train-any",
        help="train the any-painting network depth-aware (a fine-tune of the built-in one by default)",
        description="Train or fine-tune the any-painting network (MicroAST) on a folder of photos and a "
        "folder of paintings, with VGG-16 content and style losses, the style-signal contrastive loss and "
        "a Depth Anything depth loss, so that one network keeps the photo's depth layout for every "
        "painting. Weights are scale-free: content 1 / style 3 / contrastive 3 / depth 5. Writes an "
        "any-painting model for `stylize --style ... --any-model FILE`. Ctrl+C saves a checkpoint; "
        "--resume continues.",
    )
    parser.add_argument("--content-dir", required=True, help="folder of photos (searched recursively)")
    parser.add_argument("--style-dir", required=True, help="folder of paintings (searched recursively)")
    parser.add_argument("-o", "--output", required=True, help="the .safetensors any-painting model to write")
    add_settings(parser, _SETTINGS)
    parser.add_argument(
        "--init",
        default="builtin",
        metavar="builtin|random|FILE",
        help="starting weights: the built-in network (default), random (from scratch), or an any-painting "
        "model file (a path or a file in any_style/)",
    )
    parser.add_argument("--weight-mode", choices=("normalized", "raw"), default="normalized")
    parser.add_argument("--depth-loss", choices=("ssi", "l2"), default="ssi")
    parser.add_argument("--depth-model", default="small", help="small (default), base, large or a path")
    parser.add_argument("--resume", action="store_true", help="continue from the saved state")
    add_collective_timeout(parser)
    parser.set_defaults(run=lambda args: run_training(args, _train, _WORDING))
