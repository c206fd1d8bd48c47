"""Training node: train a new style network from a style image and content photos.

Node ids, input names and combo values are permanent once released: saved workflows refer to them.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from comfy_api.v0_0_2 import io, ui

from ..depthstyle_core.depth import DepthEstimator
from ..depthstyle_core.errors import InputImageError, SettingsError
from ..depthstyle_core.hub.model_paths import safe_model_path
from ..depthstyle_core.images import comfy_to_bchw, load_image, pil_to_tensor
from ..depthstyle_core.models.transformer_net import TransformerNet
from ..depthstyle_core.models.vgg import VGG16_HUB
from ..depthstyle_core.style_model import load_style_model
from ..depthstyle_core.stylize import stylize
from ..trainers import ContentSource, TrainConfig, TrainResult, train_style
from ..trainers.run.loss_curve import draw_loss_curve
from .comfy_services import (
    STYLE_FOLDER,
    folder_fingerprint,
    input_directory,
    load_builtin_vgg,
    loop_precision,
    offload_device,
    progress_callback,
    save_folder,
    should_stop,
    to_comfy_image,
    training_device,
)
from .inputs import loss_weight_input
from .types import DepthModelType, StyleModelType

log = logging.getLogger("depthstyle")

DEFAULTS = TrainConfig()


class TrainStyle(io.ComfyNode):
    """Trains a feed-forward style network on content photos (with the depth loss given a depth model)."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        styles = save_folder(STYLE_FOLDER)
        return io.Schema(
            node_id="DepthStyle_TrainStyle",
            display_name="DepthStyle Train Style",
            category="DepthStyle/train",
            is_output_node=True,
            description=(
                "Trains a style network for one style image on a set of content photos (Johnson et al. "
                "2016), with the depth loss of Liu et al. 2017 when a depth model is connected, so the "
                f"stylised image keeps the photo's depth layout. The model is saved to {styles} as "
                "<save_name>.safetensors, with a checkpoint every checkpoint_every steps and on Cancel; "
                "resume continues a cancelled run at its exact step. The VGG-16 loss network is "
                f"models/depthstyle/vgg/{VGG16_HUB.local_filename}, downloaded there once from "
                f"{VGG16_HUB.repo_id} if it is missing."
            ),
            inputs=[
                io.Image.Input(
                    "style_image", tooltip="The style to learn (the first image of a batch is used)."
                ),
                io.Image.Input(
                    "content_images",
                    optional=True,
                    tooltip="Content photos to train on, as an image batch. Use this or content_folder.",
                ),
                DepthModelType.Input(
                    "depth_model",
                    optional=True,
                    tooltip="Connect a depth model to train with the depth loss (depth-aware style "
                    "transfer). Without it the baseline Johnson et al. network is trained and depth_weight "
                    "is ignored.",
                ),
                io.String.Input(
                    "content_folder",
                    default="",
                    tooltip="A folder of content photos (.jpg .png .webp .bmp, sub-folders too): an absolute "
                    "path, or relative to ComfyUI's input folder. The paper uses MS-COCO; a few thousand "
                    "varied photos work well. Use this or content_images.",
                ),
                io.String.Input(
                    "save_name",
                    default="my_style",
                    tooltip=f"File name of the style model in {styles} (.safetensors is added). Sub-folders "
                    "are allowed (portraits/van_gogh); '..' and absolute paths are not. Without resume an "
                    "existing model of this name is trained again from scratch and overwritten.",
                ),
                io.Boolean.Input(
                    "resume",
                    default=False,
                    tooltip="Continue the run saved as <save_name>.state.safetensors at its exact step "
                    "(after Cancel, or with more iterations). Needs the same images and settings; only "
                    "iterations and checkpoint_every may change. Starts fresh if there is no saved run.",
                ),
                io.Int.Input(
                    "iterations",
                    default=DEFAULTS.iterations,
                    min=1,
                    max=10_000_000,
                    tooltip="Training steps in total (the paper: 40000 at batch 4). A step at the defaults "
                    "(256 px, batch 4, depth loss) took about 7 s on a 2-core CPU, so 40000 steps take days "
                    "there; use a GPU. The console shows the rate and the time left; Cancel keeps a "
                    "checkpoint and resume continues from it.",
                ),
                io.Int.Input(
                    "checkpoint_every",
                    default=DEFAULTS.checkpoint_every,
                    min=1,
                    max=10_000_000,
                    tooltip="Save the model and the resume state every this many steps (also on Cancel).",
                ),
                io.Int.Input(
                    "batch_size",
                    default=DEFAULTS.batch_size,
                    min=1,
                    max=256,
                    tooltip="Content crops per step. Lower it if the GPU runs out of memory.",
                ),
                io.Int.Input(
                    "image_size",
                    default=DEFAULTS.image_size,
                    min=16,
                    max=4096,
                    step=8,
                    tooltip="Side of the square training crops in pixels (the paper: 256).",
                ),
                io.Int.Input(
                    "style_size",
                    default=DEFAULTS.style_size,
                    min=0,
                    max=8192,
                    step=8,
                    tooltip="The style image is resized so its longer side has this many pixels; larger "
                    "gives finer brush strokes relative to the content. 0: use it as it is.",
                ),
                io.Float.Input(
                    "learning_rate",
                    default=DEFAULTS.lr,
                    min=1e-6,
                    max=1.0,
                    step=1e-5,
                    round=1e-6,
                    tooltip="Adam learning rate (the paper: 0.001).",
                ),
                io.Int.Input(
                    "seed",
                    default=DEFAULTS.seed,
                    min=0,
                    max=0xFFFFFFFF,
                    control_after_generate=False,
                    tooltip="Fixes the network's start and the order and crops of the content images, so a "
                    "run can be repeated and resumed. Kept fixed: a new seed is a new run.",
                ),
                loss_weight_input(
                    "content_weight",
                    DEFAULTS.content_weight,
                    "How much the photo's content is kept. Weights are each term's share of the "
                    "loss at the start of training, so the paper's 1 / 5 / 5 mean what they say.",
                ),
                loss_weight_input(
                    "style_weight",
                    DEFAULTS.style_weight,
                    "How strongly the style's textures and colours are imposed (the paper: 5).",
                ),
                loss_weight_input(
                    "depth_weight",
                    DEFAULTS.depth_weight,
                    "How strongly the stylised image must keep the photo's depth layout (the "
                    "paper: 5). Only with a depth model connected; 0 trains without the depth loss.",
                ),
                io.Float.Input(
                    "tv_weight",
                    default=DEFAULTS.tv_weight,
                    min=0.0,
                    max=1000.0,
                    step=1e-6,
                    round=False,
                    tooltip="Total-variation smoothing of the output; 0 turns it off.",
                ),
            ],
            outputs=[
                StyleModelType.Output(
                    "style_model", display_name="style_model", tooltip="The trained model, as saved."
                ),
                io.Image.Output("loss_curve", display_name="loss_curve", tooltip="The loss terms per step."),
                io.Image.Output(
                    "preview",
                    display_name="preview",
                    tooltip="A content photo stylised by the trained model.",
                ),
            ],
        )

    @classmethod
    def validate_inputs(cls, save_name: str = "my_style") -> bool | str:
        """A save name that cannot be a file in the styles folder is refused when the prompt is queued,
        before the VGG, the depth model and the photos load."""
        try:
            safe_model_path(save_folder(STYLE_FOLDER), save_name)
        except SettingsError as err:
            return str(err)
        return True

    @classmethod
    def fingerprint_inputs(cls, content_folder: str = "", **inputs: object) -> object:
        """Photos added to, removed from or rewritten in content_folder make the node train again."""
        folder = content_folder.strip()
        return folder_fingerprint(_content_folder(folder)) if folder else None

    @classmethod
    def execute(
        cls,
        style_image: torch.Tensor,
        content_folder: str,
        save_name: str,
        resume: bool,
        iterations: int,
        checkpoint_every: int,
        batch_size: int,
        image_size: int,
        style_size: int,
        learning_rate: float,
        seed: int,
        content_weight: float,
        style_weight: float,
        depth_weight: float,
        tv_weight: float,
        content_images: torch.Tensor | None = None,
        depth_model: DepthEstimator | None = None,
    ) -> io.NodeOutput:
        model_path = safe_model_path(save_folder(STYLE_FOLDER), save_name)
        content = _content_source(content_images, content_folder)
        config = TrainConfig(
            iterations=iterations,
            checkpoint_every=checkpoint_every,
            batch_size=batch_size,
            image_size=image_size,
            style_size=style_size or None,
            lr=learning_rate,
            seed=seed,
            content_weight=content_weight,
            style_weight=style_weight,
            depth_weight=depth_weight if depth_model is not None else 0.0,
            tv_weight=tv_weight,
            precision=loop_precision(),
        )
        vgg = load_builtin_vgg()
        with training_device() as device:
            result = train_style(
                comfy_to_bchw(style_image)[:1],
                content,
                model_path,
                config=config,
                vgg=vgg,
                depth_model=depth_model,
                device=device,
                resume=resume,
                on_progress=progress_callback(),
                on_log=_log_record(model_path.name, iterations),
                should_stop=should_stop,
            )
        _log_result(result)
        net = load_style_model(result.model_path)[0].to(offload_device())
        loss_curve, preview = _loss_curve(result), _preview(result, net, content, image_size)
        shown = ui.PreviewImage(loss_curve, cls=cls).values + ui.PreviewImage(preview, cls=cls).values
        return io.NodeOutput(net, loss_curve, preview, ui={"images": shown})


def _content_source(images: torch.Tensor | None, folder: str) -> ContentSource:
    """The content photos from exactly one of the two inputs; clear errors before anything is loaded."""
    folder = folder.strip()
    if images is not None and folder:
        raise InputImageError(
            "Both content_images and content_folder are set: connect content_images or type a "
            "content_folder, not both."
        )
    if images is not None:
        return ContentSource.from_tensor(comfy_to_bchw(images))
    if not folder:
        raise InputImageError(
            "No content photos: type a folder of photos into content_folder (an absolute path, or one "
            f"relative to ComfyUI's input folder {input_directory()}), or connect content_images."
        )
    return ContentSource.from_folder(_content_folder(folder))


def _content_folder(folder: str) -> Path:
    """content_folder as a path: absolute, or relative to ComfyUI's input folder."""
    path = Path(folder).expanduser()
    return path if path.is_absolute() else Path(input_directory()) / path


def _log_record(name: str, total: int):
    """``on_log`` that writes the loss averages to ComfyUI's console."""

    def on_log(record: dict[str, float]) -> None:
        terms = ", ".join(
            f"{t} {record[t]:.4g}" for t in ("content", "style", "depth", "tv") if record.get(t)
        )
        rate = record["steps_per_second"]
        left = f"about {_duration((total - record['step']) / rate)} left" if rate > 0 else "time left unknown"
        log.info(
            "DepthStyle training %s: step %d/%d, loss %.4g (%s), %.2f steps/s, %s",
            name,
            record["step"],
            total,
            record["total"],
            terms,
            rate,
            left,
        )

    return on_log


def _duration(seconds: float) -> str:
    """A time span as people say it: 45 s, 12 min, 3.5 h, 2.1 days."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 36 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def _log_result(result: TrainResult) -> None:
    start = (
        f"resumed at step {result.resumed_from}" if result.resumed_from is not None else "started at step 0"
    )
    log.info(
        "DepthStyle training %s: %s, now at step %d of %d (%.0f s of training); saved %s",
        result.model_path.name,
        start,
        result.steps_done,
        result.total_steps,
        result.seconds,
        result.model_path,
    )
    if result.skipped_files:
        log.warning(
            "DepthStyle training skipped %d unreadable content files, e.g. %s",
            len(result.skipped_files),
            result.skipped_files[0],
        )


def _loss_curve(result: TrainResult) -> torch.Tensor:
    """The loss-curve PNG the trainer wrote, else the chart drawn from the log, as an IMAGE."""
    path = result.paths.loss_curve
    image = load_image(path) if path.is_file() else pil_to_tensor(draw_loss_curve(result.records))
    return to_comfy_image(image)


def _preview(
    result: TrainResult, net: TransformerNet, content: ContentSource, image_size: int
) -> torch.Tensor:
    """The trainer's last preview, else (its file removed) the first content photo stylised now."""
    path = result.paths.preview
    if path.is_file():
        return to_comfy_image(load_image(path))
    return to_comfy_image(stylize(net, content.load_resized(0, image_size).unsqueeze(0)))


TRAIN_NODES: list[type[io.ComfyNode]] = [TrainStyle]
