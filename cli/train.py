"""``depthstyle train``: train a feed-forward style network with a console progress bar."""

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

    from ..trainers.distributed import Team
    from ..trainers.run.loop import TrainResult

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
_WORDING = Wording(
    model_kind="style model", shown_terms=("content", "style", "depth"), file_noun="content file"
)


def _train_config(args: argparse.Namespace):
    """TrainConfig from the options given; the rest keep TrainConfig's defaults (the paper's)."""
    from ..depthstyle_core.models.transformer_net import TransformerNetConfig
    from ..trainers import TrainConfig

    given = given_settings(args, _TRAIN_SETTINGS)
    if given.get("style_size") == 0:
        given["style_size"] = None
    return TrainConfig(
        **given,
        weight_mode=args.weight_mode,
        depth_loss=args.depth_loss,
        net_config=TransformerNetConfig(norm=args.norm, upsample=args.upsample, output=args.output_layer),
    )


def _train(args: argparse.Namespace, team: Team, device: str | torch.device, console: Console) -> TrainResult:
    from ..depthstyle_core.images import load_image
    from ..trainers import train_style

    config = _train_config(args)
    vgg, depth = load_loss_networks(args, config.depth_weight, console)
    console.say_global_batch(config.batch_size)
    return train_style(
        load_image(args.style),
        args.content_dir,
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
        "train",
        help="train a new style model (depth-aware by default)",
        description="Train a feed-forward style network on a folder of photos, with VGG-16 content and "
        "style losses and a Depth Anything depth loss (Liu et al. 2017). Weights are scale-free: "
        "content 1 / style 5 / depth 5 are the paper's. Ctrl+C saves a checkpoint; --resume continues.",
    )
    parser.add_argument("--style", required=True, help="the style image")
    parser.add_argument("--content-dir", required=True, help="folder of photos (searched recursively)")
    parser.add_argument("-o", "--output", required=True, help="the .safetensors style model to write")
    add_settings(parser, _TRAIN_SETTINGS)
    parser.add_argument("--weight-mode", choices=("normalized", "raw"), default="normalized")
    parser.add_argument("--depth-loss", choices=("ssi", "l2"), default="ssi")
    parser.add_argument("--depth-model", default="small", help="small (default), base, large or a path")
    parser.add_argument("--norm", choices=("instance", "batch"), default="instance")
    parser.add_argument("--upsample", choices=("nearest", "transposed"), default="nearest")
    parser.add_argument("--output-layer", choices=("linear", "tanh"), default="linear")
    parser.add_argument("--resume", action="store_true", help="continue from the saved state")
    add_collective_timeout(parser)
    parser.set_defaults(run=lambda args: run_training(args, _train, _WORDING))
