"""Optimisation node: stylise images with any painting, no trained model needed.

Node ids, input names and combo values are permanent once released: saved workflows refer to them.
The input names of the settings are OptimizeConfig's field names, so they pass straight through.
"""

from __future__ import annotations

import torch
from comfy_api.v0_0_2 import io

from ..depthstyle_core.depth import DepthEstimator
from ..depthstyle_core.depth_maps import depth_from_map
from ..depthstyle_core.images import comfy_to_bchw
from ..depthstyle_core.models.vgg import VGG16_HUB
from ..trainers import OptimizeConfig, optimize_style
from ..trainers.optimize.config import INITS
from ..trainers.optimize.plan import plan_sizes
from .comfy_services import (
    device_with_room,
    load_builtin_vgg,
    loop_precision,
    module_bytes,
    progress_callback,
    repeat_to_batch,
    should_stop,
    to_comfy_image,
)
from .inputs import loss_weight_input, mask_input, preserve_color_input
from .types import DepthModelType

DEFAULTS = OptimizeConfig()
BYTES_PER_PIXEL = 6144  # fp32 VGG-16 activations of content and result, with gradients and headroom


class OptimizeStyle(io.ComfyNode):
    """Optimises each image towards the style images, with the depth loss when a depth model is given."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="DepthStyle_OptimizeStyle",
            display_name="DepthStyle Optimize Style (any painting, no training)",
            category="DepthStyle/style",
            description=(
                "Paints each image in the style of any painting without a trained model: the picture "
                "itself is optimised (Gatys et al. 2016) so that its VGG-16 style statistics match the "
                "painting while its content and, with a depth model connected, its depth layout stay "
                "those of the photo (Liu et al. 2017). Works coarse to fine, from 128 px up to 'size'. "
                "Seconds on a GPU, minutes on a CPU. The VGG-16 loss network is "
                f"models/depthstyle/vgg/{VGG16_HUB.local_filename}, else downloaded once from "
                f"{VGG16_HUB.repo_id}."
            ),
            inputs=[
                io.Image.Input("image", tooltip="The photos to stylise (a batch is optimised together)."),
                io.Image.Input(
                    "style_image",
                    tooltip="The painting. A batch of several paintings (same size) blends their styles "
                    "in equal shares.",
                ),
                DepthModelType.Input(
                    "depth_model",
                    optional=True,
                    lazy=True,
                    tooltip="Connect a depth model to keep the photo's depth layout (depth-aware style "
                    "transfer). Without it depth_weight is ignored; with depth_weight 0 it is not loaded.",
                ),
                io.Image.Input(
                    "depth_map",
                    optional=True,
                    tooltip="A depth map made by any node (near = white, any size; one for all images, one "
                    "per image or a few taken in turn) as what the result's depth must match, instead of "
                    "the photo's depth from the depth model (which still measures the result).",
                ),
                io.Int.Input(
                    "size",
                    default=DEFAULTS.size,
                    min=0,
                    max=4096,
                    step=8,
                    tooltip="Long side of the result in pixels; 0 keeps the input's size. Larger is "
                    "slower (the last scale costs most).",
                ),
                io.Int.Input(
                    "steps",
                    default=DEFAULTS.steps,
                    min=1,
                    max=10000,
                    tooltip="Optimisation steps per scale (the first, smallest scale runs twice as many). "
                    "More steps take the picture further into the style.",
                ),
                loss_weight_input(
                    "content_weight",
                    DEFAULTS.content_weight,
                    "How much of the photo's content is "
                    "kept. The weights are shares, so the paper's 1 / 5 / 5 mean what they say.",
                ),
                loss_weight_input(
                    "style_weight",
                    DEFAULTS.style_weight,
                    "How strongly the painting's textures and colours are imposed (the paper: 5).",
                ),
                loss_weight_input(
                    "depth_weight",
                    DEFAULTS.depth_weight,
                    "How strongly the photo's depth layout is "
                    "kept (the paper: 5). Only with a depth model connected.",
                ),
                loss_weight_input(
                    "tv_weight", DEFAULTS.tv_weight, "Smoothing of pixel noise; 0 turns it off."
                ),
                io.Combo.Input(
                    "init",
                    options=list(INITS),
                    default=DEFAULTS.init,
                    tooltip="Start from the photo (keeps its composition best), from noise (freer, more "
                    "painterly), or from their average.",
                ),
                io.Int.Input(
                    "seed",
                    default=DEFAULTS.seed,
                    min=0,
                    max=0xFFFFFFFF,
                    control_after_generate=False,
                    tooltip="Fixes the noise used to start (init noise/blend) and to balance the weights, "
                    "so a result can be repeated.",
                ),
                io.Float.Input(
                    "strength",
                    default=DEFAULTS.strength,
                    min=0.0,
                    max=1.0,
                    step=0.01,
                    tooltip="Blend between the photo (0) and the full result (1).",
                ),
                preserve_color_input(),
                mask_input(),
            ],
            outputs=[io.Image.Output("optimized", display_name="optimized", tooltip="The stylised images.")],
        )

    @classmethod
    def check_lazy_status(cls, depth_weight: float, **inputs: object) -> list[str]:
        """The depth model is loaded (and maybe downloaded) only when the depth loss counts."""
        unloaded = "depth_model" in inputs and inputs["depth_model"] is None
        return ["depth_model"] if depth_weight > 0 and unloaded else []

    @classmethod
    def execute(
        cls,
        image: torch.Tensor,
        style_image: torch.Tensor,
        depth_model: DepthEstimator | None = None,
        depth_map: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        **settings: object,
    ) -> io.NodeOutput:
        depth_weight = settings["depth_weight"] if depth_model is not None else 0.0
        config = OptimizeConfig(**{**settings, "depth_weight": depth_weight, "precision": loop_precision()})
        vgg = load_builtin_vgg()
        content = comfy_to_bchw(image)
        batch, _, height, width = content.shape
        if depth_map is not None:
            depth_map = depth_from_map(comfy_to_bchw(repeat_to_batch(depth_map, batch)), batch, height, width)
        depth_network = None if depth_model is None else depth_model.model
        with device_with_room(_memory(content, config, vgg, depth_network)) as device:
            result = optimize_style(
                content,
                comfy_to_bchw(style_image),
                vgg=vgg,
                depth_model=depth_model,
                config=config,
                device=device,
                mask=repeat_to_batch(mask, batch),
                depth_map=depth_map,
                on_progress=progress_callback(),
                should_stop=should_stop,
            )
        return io.NodeOutput(to_comfy_image(result))


def _memory(content: torch.Tensor, config: OptimizeConfig, *networks: torch.nn.Module | None) -> int:
    """Bytes the run needs on the device: the networks' weights, and the activations of the largest
    scale of its size plan (forward and backward through VGG-16 and the depth network)."""
    batch, _, height, width = content.shape
    plan = plan_sizes(height, width, config.size, config.min_size, config.scale_step)
    work_height, work_width = plan.working
    return module_bytes(*networks) + batch * work_height * work_width * BYTES_PER_PIXEL


OPTIMIZE_NODES: list[type[io.ComfyNode]] = [OptimizeStyle]
