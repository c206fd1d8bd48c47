"""Depth nodes: load a Depth Anything V2 model, estimate depth maps from images.

Node ids, input names and combo values are permanent once released: saved workflows refer to them.
"""

from __future__ import annotations

import torch
from comfy_api.v0_0_2 import io

from ..depthstyle_core.depth import (
    DEPTH_MODELS,
    NORMALIZATIONS,
    PRECISIONS,
    DepthEstimator,
    activation_bytes,
    colorize_depth,
    estimate_depth,
    load_depth_model,
    normalize_depth,
)
from ..depthstyle_core.images import comfy_to_bchw
from .comfy_services import (
    DEPTH_FOLDER,
    model_dirs,
    model_file_fingerprint,
    model_file_path,
    model_files,
    offload_device,
    on_compute_device,
    progress_callback,
    save_folder,
    should_stop,
    to_comfy_image,
)
from .model_choices import DEFAULT_DEPTH_MODEL, builtin_depth_model, depth_model_choices
from .types import DepthModelType

LICENCE_NOTE = (
    "Licences: Depth-Anything-V2-Small is Apache-2.0 (commercial use allowed); Base and Large are "
    "CC-BY-NC-4.0 (non-commercial use only)."
)


class DepthModelLoader(io.ComfyNode):
    """Loads a Depth Anything V2 model: a built-in one (downloaded once) or a local safetensors file."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="DepthStyle_DepthModelLoader",
            display_name="DepthStyle Depth Model Loader",
            category="DepthStyle/depth",
            description=(
                "Loads a Depth Anything V2 depth model. Built-in models are looked for in "
                "models/depthstyle/depth (and folders added for depthstyle_depth in extra_model_paths.yaml), "
                "then in the Hugging Face cache, then downloaded at a pinned revision into the first of "
                "those folders. Local .safetensors files in those folders are listed too (original or "
                f"Hugging Face layout). {LICENCE_NOTE}"
            ),
            inputs=[
                io.Combo.Input(
                    "model",
                    options=depth_model_choices(model_files(DEPTH_FOLDER)),
                    default=DEFAULT_DEPTH_MODEL,
                    tooltip=f"Which depth model. {LICENCE_NOTE}",
                ),
                io.Combo.Input(
                    "precision",
                    options=list(PRECISIONS),
                    default="fp32",
                    tooltip="fp16/bf16 run faster on a GPU but are less exact (a non-finite result is redone "
                    "in fp32). Use fp32 on the CPU.",
                ),
            ],
            outputs=[DepthModelType.Output("depth_model", display_name="depth_model")],
        )

    @classmethod
    def fingerprint_inputs(cls, model: str, precision: str) -> object:
        """The model file as it is now: a file rewritten under the same name is loaded again."""
        spec = builtin_depth_model(model)
        name = DEPTH_MODELS[spec].hub_file.local_filename if spec is not None else model
        return model_file_fingerprint(DEPTH_FOLDER, name)

    @classmethod
    def execute(cls, model: str, precision: str) -> io.NodeOutput:
        source = builtin_depth_model(model) or model_file_path(DEPTH_FOLDER, model)
        estimator = load_depth_model(
            source,
            model_dirs=model_dirs(DEPTH_FOLDER),
            download_dir=save_folder(DEPTH_FOLDER),
            device=offload_device(),
            precision=precision,
        )
        return io.NodeOutput(estimator)


class EstimateDepth(io.ComfyNode):
    """Estimates a depth map per image: near is white, far is black, at the input's size."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="DepthStyle_EstimateDepth",
            display_name="DepthStyle Estimate Depth",
            category="DepthStyle/depth",
            description=(
                "Relative depth of each image with Depth Anything V2, as a greyscale image (near = white) "
                "at the input's size, plus a colourised preview."
            ),
            inputs=[
                io.Image.Input("image"),
                DepthModelType.Input("depth_model"),
                io.Int.Input(
                    "resolution",
                    default=518,
                    min=14,
                    max=4096,
                    step=14,
                    tooltip="Processing size of the shorter side, rounded to a multiple of 14. The output "
                    "always has the input's size; larger shows finer detail but is slower.",
                ),
                io.Combo.Input(
                    "normalization",
                    options=list(NORMALIZATIONS),
                    default="per_image",
                    tooltip="per_image: each depth map spans 0..1 (still images). per_batch: one range for "
                    "the whole batch (video, no flicker). raw: the network's relative inverse depth, "
                    "not normalised (values above 1 are kept).",
                ),
            ],
            outputs=[
                io.Image.Output("depth", display_name="depth", tooltip="Greyscale depth, near = white."),
                io.Image.Output(
                    "depth_colored", display_name="depth_colored", tooltip="Colourised depth for viewing."
                ),
            ],
        )

    @classmethod
    def execute(
        cls, image: torch.Tensor, depth_model: DepthEstimator, resolution: int, normalization: str
    ) -> io.NodeOutput:
        photos = comfy_to_bchw(image)
        batch, _, height, width = photos.shape
        with on_compute_device(depth_model.model, activation_bytes(height, width, resolution, batch)):
            depth = estimate_depth(
                depth_model,
                photos,
                resolution=resolution,
                normalization=normalization,
                on_progress=progress_callback(),
                should_stop=should_stop,
            )
        # Normalised depth passes unchanged; raw depth is brought into 0..1 for the colour map.
        colored = colorize_depth(normalize_depth(depth, "per_batch"))
        return io.NodeOutput(to_comfy_image(depth.expand(-1, 3, -1, -1)), to_comfy_image(colored))


DEPTH_NODES: list[type[io.ComfyNode]] = [DepthModelLoader, EstimateDepth]
