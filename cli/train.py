"""``depthstyle train``: train a feed-forward style network with a console progress bar."""

from __future__ import annotations

import argparse
import sys

from .common import EXIT_INTERRUPTED

_TRAIN_SETTINGS = (
    ("iterations", int, "training steps (default 40000, as the paper)"),
    ("batch_size", int, "images per step (default 4)"),
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


def _progress_line(step: int, total: int, seconds: float, losses: dict[str, float]) -> str:
    """One console line: a bar, the step, speed, time left and the last logged losses."""
    width = 30
    filled = int(width * step / max(total, 1))
    rate = step / max(seconds, 1e-9)
    minutes_left = (total - step) / rate / 60 if rate > 0 else 0.0
    loss = " ".join(f"{k} {v:.3g}" for k, v in losses.items())
    bar = "#" * filled + "." * (width - filled)
    return f"\r[{bar}] {step}/{total} {rate:.2f} it/s, {minutes_left:.1f} min left {loss}"


def _train_command(args: argparse.Namespace) -> int:
    import time

    from ..depthstyle_core.depth import load_depth_model
    from ..depthstyle_core.images import load_image
    from ..depthstyle_core.models.vgg import load_vgg16
    from ..trainers import train_style

    config = _train_config(args)
    vgg = load_vgg16(model_dirs=[args.models_dir / "vgg"])
    depth = None
    if config.depth_weight > 0:
        depth = load_depth_model(args.depth_model, model_dirs=[args.models_dir / "depth"])
        print(f"depth model: {depth.name} (licence {depth.licence})", file=sys.stderr)
    started = time.perf_counter()
    losses: dict[str, float] = {}

    def on_log(record: dict[str, float]) -> None:
        losses.clear()
        losses.update({k: record[k] for k in ("content", "style", "depth") if k in record})

    def on_progress(step: int, total: int, preview: object) -> None:
        line = _progress_line(step, total, time.perf_counter() - started, losses)
        print(line, end="", file=sys.stderr, flush=True)

    try:
        result = train_style(
            load_image(args.style),
            args.content_dir,
            args.output,
            config=config,
            vgg=vgg,
            depth_model=depth,
            device=args.device,
            resume=args.resume,
            on_progress=on_progress,
            on_log=on_log,
        )
    except KeyboardInterrupt:
        print("\ninterrupted: a checkpoint was saved; run again with --resume to continue", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(file=sys.stderr)
    if result.skipped_files:
        print(f"skipped {len(result.skipped_files)} unreadable content files", file=sys.stderr)
    print(
        f"style model: {result.model_path} ({result.steps_done}/{result.total_steps} steps); "
        f"loss curve: {result.paths.loss_curve}",
        file=sys.stderr,
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
    parser.set_defaults(run=_train_command)
