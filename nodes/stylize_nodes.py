"""Style nodes: load a trained style model, stylise images with it.

Node ids, input names and combo values are permanent once released: saved workflows refer to them.
"""

from __future__ import annotations

import torch
from comfy_api.v0_0_2 import io

from ..depthstyle_core.errors import ModelNotAvailableError
from ..depthstyle_core.hub.resolve import HubFile
from ..depthstyle_core.images import comfy_to_bchw
from ..depthstyle_core.models.transformer_net import TransformerNet
from ..depthstyle_core.style_model import load_style_model
from ..depthstyle_core.stylize import MAX_SCALE, POOLED_FRAMES, stylize
from ..depthstyle_core.tiling import SMALLEST_TILE, working_pixels
from .comfy_services import (
    STYLE_FOLDER,
    model_dirs,
    model_file_fingerprint,
    model_file_path,
    model_files,
    offload_device,
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
from .model_choices import HUB_STYLE_CHOICE, style_model_choices
from .types import StyleModelType

BYTES_PER_PIXEL = 512  # TransformerNet activations per input pixel in fp32, with headroom
CHUNK = 4  # images stylize runs at once (its default chunk_size)


class StyleModelLoader(io.ComfyNode):
    """Loads a style model: a .safetensors file from the style folders, or a file on the Hugging Face Hub."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        choices = style_model_choices(model_files(STYLE_FOLDER))
        return io.Schema(
            node_id="DepthStyle_StyleModelLoader",
            display_name="DepthStyle Style Model Loader",
            category="DepthStyle/style",
            description=(
                "Loads a trained style network (.safetensors) from models/depthstyle/styles (and folders "
                "added for depthstyle_styles in extra_model_paths.yaml). Styles trained with DepthStyle "
                "Train Style are saved there; community fast_neural_style models work once converted "
                "with `depthstyle convert`. Set hub_repo_id to load from the Hugging Face Hub instead."
            ),
            inputs=[
                io.Combo.Input(
                    "model",
                    options=choices,
                    default=choices[0],
                    tooltip="A style model file. Ignored when hub_repo_id is set. Press R (refresh) after "
                    "training or copying in a new model.",
                ),
                io.String.Input(
                    "hub_repo_id",
                    default="",
                    optional=True,
                    tooltip="Load from the Hugging Face Hub instead, e.g. user/my-styles. When set it wins "
                    "over 'model'. Empty: use 'model'.",
                ),
                io.String.Input(
                    "hub_filename",
                    default="",
                    optional=True,
                    tooltip="The .safetensors file in hub_repo_id, e.g. candy.safetensors (may include a "
                    "folder). Only used with hub_repo_id.",
                ),
                io.String.Input(
                    "hub_revision",
                    default="main",
                    optional=True,
                    tooltip="Which version of the file. A full 40-character commit id pins it exactly: the "
                    "same weights forever, loaded from the Hub cache without asking the network once "
                    "downloaded (best for shared workflows). A branch or tag such as 'main' takes its newest "
                    "commit at the first download and is not refreshed afterwards.",
                ),
            ],
            outputs=[StyleModelType.Output("style_model", display_name="style_model")],
        )

    @classmethod
    def fingerprint_inputs(
        cls, model: str, hub_repo_id: str = "", hub_filename: str = "", hub_revision: str = "main"
    ) -> object:
        if hub_repo_id.strip():
            return hub_repo_id, hub_filename, hub_revision
        return model_file_fingerprint(STYLE_FOLDER, model)

    @classmethod
    def execute(
        cls, model: str, hub_repo_id: str = "", hub_filename: str = "", hub_revision: str = "main"
    ) -> io.NodeOutput:
        net = _load_style(model, hub_repo_id.strip(), hub_filename.strip(), hub_revision.strip())
        return io.NodeOutput(net.to(offload_device()))


def _load_style(model: str, repo_id: str, filename: str, revision: str) -> TransformerNet:
    """The style network named by the loader's inputs: the Hub reference if given, else the file."""
    folders = ", ".join(model_dirs(STYLE_FOLDER))
    if not repo_id:
        if model == HUB_STYLE_CHOICE:
            raise ModelNotAvailableError(
                f"No style model chosen: put .safetensors style models into {folders} and pick one in "
                "'model' (refresh the page after adding files), or set hub_repo_id and hub_filename."
            )
        return load_style_model(model_file_path(STYLE_FOLDER, model))[0]
    if not filename:
        raise ValueError(f"hub_filename is empty: name the .safetensors file to load from {repo_id}")
    try:
        # No model folders here: a local file of the same name must not replace the pinned Hub file.
        return load_style_model(HubFile(repo_id, filename, revision or "main"))[0]
    except ModelNotAvailableError as err:
        raise ModelNotAvailableError(
            f"{err}\nOr save the file into {folders}, choose it in 'model' and clear hub_repo_id."
        ) from err


class Stylize(io.ComfyNode):
    """Applies a style model to images: same size out as in, with strength and colour preservation."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="DepthStyle_Stylize",
            display_name="DepthStyle Stylize",
            category="DepthStyle/style",
            description=(
                "Stylises each image with a trained style network in one pass. The output has the input's "
                "size; large images are split into overlapping tiles that join without seams. Optional: a "
                "mask for per-pixel strength, a brush size (scale), and shared statistics for video frames."
            ),
            inputs=[
                io.Image.Input("image"),
                StyleModelType.Input("style_model"),
                io.Float.Input(
                    "strength",
                    default=1.0,
                    min=0.0,
                    max=1.0,
                    step=0.01,
                    tooltip="Blend between the input (0) and the fully stylised image (1).",
                ),
                preserve_color_input(),
                io.Int.Input(
                    "tile_size",
                    default=0,
                    min=0,
                    max=MAX_TILE,
                    step=8,
                    tooltip="0: whole images, split into tiles only if the GPU runs out of memory. Otherwise "
                    f"the tile side in pixels, after scale (at least {SMALLEST_TILE}); tiles give the same "
                    "result as whole images and bound memory, but are slower: above about 4 megapixels the "
                    "tiles first share the whole image's statistics, which takes several extra passes.",
                ),
                precision_input(),
                io.Float.Input(
                    "scale",
                    default=1.0,
                    min=0.1,
                    max=MAX_SCALE,
                    step=0.05,
                    optional=True,
                    tooltip="Brush size. The style is painted on the image resized by this factor and the "
                    "result enlarged back to the input's size (bicubic): 0.5 paints strokes twice as large "
                    "(use it on big photos, where the style would otherwise turn into fine noise), 2 half "
                    "as large.",
                ),
                frames_input(optional=True),
                mask_input(),
            ],
            outputs=[
                # The id may not repeat an input's ("image"); the display name is what users see.
                io.Image.Output("stylized", display_name="stylized", tooltip="The stylised images.")
            ],
        )

    @classmethod
    def validate_inputs(cls, tile_size: int = 0, frames: str = "independent") -> bool | str:
        """A tile too small to work, or frames 'flow' without OpenCV, is refused when the prompt is
        queued, before anything loads."""
        tile_answer = tile_problem("tile_size", tile_size, "automatic")
        return frames_problem(frames) if tile_answer is True else tile_answer

    @classmethod
    def execute(
        cls,
        image: torch.Tensor,
        style_model: TransformerNet,
        strength: float,
        preserve_color: bool,
        tile_size: int,
        precision: str = "fp32",
        scale: float = 1.0,
        frames: str = "independent",
        mask: torch.Tensor | None = None,
    ) -> io.NodeOutput:
        content = comfy_to_bchw(image)
        with on_compute_device(style_model, _stylize_memory(content, tile_size, scale, frames)) as device:
            styled = stylize(
                style_model,
                content,
                strength=strength,
                preserve_color=preserve_color,
                mask=repeat_to_batch(mask, content.shape[0]),
                scale=scale,
                frames=frames,
                tile_size=tile_size,
                precision=precision,
                device=device,
                on_progress=progress_callback(),
                should_stop=should_stop,
            )
        return io.NodeOutput(to_comfy_image(styled))


def _stylize_memory(content: torch.Tensor, tile_size: int, scale: float, frames: str) -> int:
    """Bytes to free before stylising (see :func:`..depthstyle_core.tiling.working_pixels`)."""
    batch, _, height, width = content.shape
    pooled = frames in POOLED_FRAMES
    pixels = working_pixels(batch, height * width * scale * scale, tile_size, pooled, CHUNK)
    return pixels * BYTES_PER_PIXEL


STYLIZE_NODES: list[type[io.ComfyNode]] = [StyleModelLoader, Stylize]
