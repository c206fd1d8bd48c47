"""Any-painting node: stylise with any painting in one pass of the built-in network, no download.

Node ids, input names and combo values are permanent once released: saved workflows refer to them.
"""

from __future__ import annotations

import functools
import logging
import os
from contextlib import ExitStack

import torch
from comfy_api.v0_0_2 import io

from ..depthstyle_core.any_style import DEFAULT_DEPTH_PRESERVE
from ..depthstyle_core.any_style.model_file import BUILTIN_WEIGHTS, load_any_style_model
from ..depthstyle_core.any_style.runtime import release_runtime_memory
from ..depthstyle_core.any_style.stylize import DEFAULT_STYLE_SIZE, stylize_any
from ..depthstyle_core.depth import DEFAULT_RESOLUTION, DepthEstimator, activation_bytes, estimate_depth
from ..depthstyle_core.depth_maps import depth_from_map
from ..depthstyle_core.images import comfy_to_bchw
from ..depthstyle_core.models.microast import MicroAST
from ..depthstyle_core.runtimes import chosen_runtime
from ..depthstyle_core.stylize import MAX_SCALE, POOLED_FRAMES
from ..depthstyle_core.tiling import SMALLEST_TILE, working_pixels
from .comfy_services import (
    ANY_STYLE_FOLDER,
    model_file_fingerprint,
    model_file_path,
    model_files,
    on_compute_device,
    progress_callback,
    repeat_to_batch,
    should_stop,
    to_comfy_image,
)
from .inputs import (
    MAX_TILE,
    frames_input,
    frames_problem,
    mask_input,
    precision_input,
    preserve_color_input,
    tile_problem,
)
from .model_choices import BUILTIN_ANY_STYLE_MODEL, any_style_model_choices
from .types import DepthModelType

log = logging.getLogger("depthstyle")
BYTES_PER_PIXEL = 400  # MicroAST activations per input pixel in fp32 (16 channels at full size), headroom
CHUNK = 4  # images stylize_any runs at once (its default chunk_size)


class StylizeAnyPainting(io.ComfyNode):
    """Paints images in the style of any painting in one forward pass (MicroAST), depth-aware."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        choices = any_style_model_choices(model_files(ANY_STYLE_FOLDER))
        return io.Schema(
            node_id="DepthStyle_StylizeAnyPainting",
            display_name="DepthStyle Stylize Any Painting (instant)",
            category="DepthStyle/style",
            description=(
                "Paints each image in the style of any painting in one pass of a small network that ships "
                "with DepthStyle (MicroAST, Wang et al., AAAI 2023; MIT licence): no training, no download. "
                "Connect a depth model, or a depth map from any node, and near things keep more of the photo "
                "(depth_preserve). Any size; "
                "huge images can be tiled with the same result."
            ),
            inputs=[
                io.Image.Input("image", tooltip="The photos (or video frames) to paint."),
                io.Image.Input(
                    "style_image",
                    tooltip="The painting, any size. A batch of several paintings blends their styles in "
                    "equal shares.",
                ),
                DepthModelType.Input(
                    "depth_model",
                    optional=True,
                    lazy=True,
                    tooltip="Connect a depth model to make the style depth-aware: near things keep more of "
                    "the photo (see depth_preserve). Not loaded when depth_preserve is 0 or a depth_map "
                    "is connected.",
                ),
                io.Image.Input(
                    "depth_map",
                    optional=True,
                    tooltip="A depth map made by any node (near = white, any size; one for all images, one "
                    "per image or a few taken in turn), instead of a depth model: it drives depth_preserve "
                    "the same way. With both connected, the depth map is used.",
                ),
                mask_input(),
                io.Float.Input(
                    "strength",
                    default=1.0,
                    min=0.0,
                    max=1.0,
                    step=0.01,
                    tooltip="0 = the photo, 1 = the network's full result. In between the painting's "
                    "colours and brushwork come in steadily (not a cross-fade of two pictures).",
                ),
                io.Float.Input(
                    "depth_preserve",
                    default=DEFAULT_DEPTH_PRESERVE,
                    min=0.0,
                    max=1.0,
                    step=0.05,
                    tooltip="With a depth model: how much of the photo the nearest things keep (0 = none, "
                    "1 = the nearest things stay the photo). Far things always take the full style.",
                ),
                io.Int.Input(
                    "style_size",
                    default=DEFAULT_STYLE_SIZE,
                    min=0,
                    max=4096,
                    step=8,
                    tooltip="The painting's long side in pixels before the network reads it; larger gives "
                    "finer brushwork. 0 keeps the painting's own size.",
                ),
                preserve_color_input(),
                frames_input(optional=False),
                io.Int.Input(
                    "tile",
                    default=0,
                    min=0,
                    max=MAX_TILE,
                    step=8,
                    tooltip="0: whole images, split into tiles only if the GPU runs out of memory. Otherwise "
                    f"the tile side in pixels (at least {SMALLEST_TILE}): the same result with bounded "
                    "memory, for very large images.",
                ),
                io.Combo.Input(
                    "model",
                    options=choices,
                    default=BUILTIN_ANY_STYLE_MODEL,
                    optional=True,
                    tooltip="The built-in network, or a model file of the same architecture from "
                    "models/depthstyle/any_style (for example a fine-tuned one).",
                ),
                precision_input(),
                io.Float.Input(
                    "scale",
                    default=1.0,
                    min=0.1,
                    max=MAX_SCALE,
                    step=0.05,
                    optional=True,
                    tooltip="Brush size. The network paints the photo resized by this factor and the result "
                    "comes back to the photo's size, its outlines guided by the photo: 0.5 paints strokes "
                    "twice as large (use it on big photos, where the strokes are otherwise tiny next to "
                    "the picture), 2 half as large. Depth and masks act at the photo's size.",
                ),
            ],
            outputs=[io.Image.Output("stylized", display_name="stylized", tooltip="The painted images.")],
        )

    @classmethod
    def fingerprint_inputs(cls, model: str = BUILTIN_ANY_STYLE_MODEL, **inputs: object) -> object:
        """A model file rewritten under the same name (a fine-tune trained again) makes the node run
        again; the built-in weights never change."""
        return None if model == BUILTIN_ANY_STYLE_MODEL else model_file_fingerprint(ANY_STYLE_FOLDER, model)

    @classmethod
    def validate_inputs(cls, tile: int = 0, frames: str = "independent") -> bool | str:
        """A tile too small to paint, or frames 'flow' without OpenCV, is refused when the prompt is
        queued, before anything loads."""
        tile_answer = tile_problem("tile", tile, "whole images")
        return frames_problem(frames) if tile_answer is True else tile_answer

    @classmethod
    def check_lazy_status(
        cls, depth_preserve: float, depth_map: torch.Tensor | None = None, **inputs: object
    ) -> list[str]:
        """The depth model is loaded (and maybe downloaded) only when depth is used and no depth map
        is connected."""
        unloaded = "depth_model" in inputs and inputs["depth_model"] is None
        return ["depth_model"] if depth_preserve > 0 and depth_map is None and unloaded else []

    @classmethod
    def execute(
        cls,
        image: torch.Tensor,
        style_image: torch.Tensor,
        depth_model: DepthEstimator | None = None,
        depth_map: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        model: str = BUILTIN_ANY_STYLE_MODEL,
        **settings: object,
    ) -> io.NodeOutput:
        content = comfy_to_bchw(image)
        batch, _, height, width = content.shape
        mask, depth_map = repeat_to_batch(mask, batch), repeat_to_batch(depth_map, batch)
        network = _any_style_model(model)
        normalization = "per_batch" if settings["frames"] in POOLED_FRAMES else "per_image"
        with ExitStack() as stack:
            device = stack.enter_context(on_compute_device(network, _memory(content, settings)))
            log.info("DepthStyle Stylize Any Painting: on %s (%s)", device, chosen_runtime("auto", device))
            stack.callback(release_runtime_memory, network)
            depth = None
            if depth_map is not None and settings["depth_preserve"] > 0:
                if depth_model is not None:
                    log.warning(
                        "DepthStyle Stylize Any Painting: using the depth_map input, not the depth model"
                    )
                depth = depth_from_map(comfy_to_bchw(depth_map), batch, height, width, normalization)
            elif depth_model is not None and settings["depth_preserve"] > 0:
                depth_room = activation_bytes(height, width, DEFAULT_RESOLUTION, batch)
                stack.enter_context(on_compute_device(depth_model.model, depth_room))
                depth = estimate_depth(
                    depth_model, content, normalization=normalization, should_stop=should_stop
                )
            styled = stylize_any(
                network,
                content,
                comfy_to_bchw(style_image),
                mask=mask,
                depth=depth,
                device=device,
                on_progress=progress_callback(),
                should_stop=should_stop,
                **settings,
            )
        return io.NodeOutput(to_comfy_image(styled))


def _any_style_model(choice: str) -> MicroAST:
    """The network chosen in the model combo: the built-in weights, or a file of the any_style folders."""
    path = BUILTIN_WEIGHTS if choice == BUILTIN_ANY_STYLE_MODEL else model_file_path(ANY_STYLE_FOLDER, choice)
    stat = os.stat(path)
    return _network_from(str(path), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=2)
def _network_from(path: str, mtime_ns: int, size: int) -> MicroAST:
    """The network in ``path``, read once per version of the file (a rewritten file is read again), so
    that the same network stays in ComfyUI's memory management between prompts. Channels-last, the
    layout stylize_any runs, which a move to the GPU keeps."""
    return load_any_style_model(path).to(memory_format=torch.channels_last)


def _memory(content: torch.Tensor, settings: dict[str, object]) -> int:
    """Bytes to free before stylising (see :func:`..depthstyle_core.tiling.working_pixels`)."""
    batch, _, height, width = content.shape
    shared = settings.get("frames") in POOLED_FRAMES
    scale = float(settings.get("scale") or 1.0)
    pixels = height * width * max(scale, 1.0) ** 2
    return working_pixels(batch, pixels, int(settings.get("tile") or 0), shared, CHUNK) * BYTES_PER_PIXEL


ANY_PAINTING_NODES: list[type[io.ComfyNode]] = [StylizeAnyPainting]
