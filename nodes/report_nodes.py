"""Report node: how well a stylised image keeps the photo's depth, outlines and structure.

Node ids, input names and combo values are permanent once released: saved workflows refer to them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import torch
from comfy_api.v0_0_2 import io, ui

from ..depthstyle_core.depth import DepthEstimator, activation_bytes
from ..depthstyle_core.errors import InputImageError, OperationCancelled
from ..depthstyle_core.images import comfy_to_bchw
from ..depthstyle_core.models.vgg import VGG16_HUB, VGG16Features
from ..depthstyle_core.report.edges import DEFAULT_TOLERANCE
from ..depthstyle_core.report.figure import draw_structure_figure, figure_batch
from ..depthstyle_core.report.metrics import evaluate_structure, match_size, metrics_json
from ..depthstyle_core.video.flow import flow_problem
from ..depthstyle_core.video.warp_error import LONG_GAP, WarpingErrorMeter, warping_summary
from .comfy_services import load_builtin_vgg, on_compute_device, should_stop, to_comfy_image
from .types import DepthModelType


class StructureReport(io.ComfyNode):
    """Measures depth, outline and structure agreement between photos and their stylised versions."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="DepthStyle_StructureReport",
            display_name="DepthStyle Structure Report",
            category="DepthStyle/depth",
            is_output_node=True,
            description=(
                "Compares each stylised image with its photo: depth agreement through the depth model "
                "(AbsRel and delta<1.25 after least-squares scale-and-shift alignment on inverse depth, "
                "Spearman rho), outline agreement (F1 of Canny-style edges within edge_tolerance pixels), "
                "SSIM of the luminance, and with a style image the Gram-matrix style distance (VGG-16: "
                f"models/depthstyle/vgg/{VGG16_HUB.local_filename}, else downloaded once). Outputs a figure "
                "(photo | stylised | both depth maps | depth error, numbers below) and the numbers as JSON."
            ),
            inputs=[
                io.Image.Input("image", tooltip="The photos (one for all stylised images, or one each)."),
                io.Image.Input(
                    "stylized_image", tooltip="The stylised images, resized to the photo if needed."
                ),
                DepthModelType.Input("depth_model", tooltip="The depth network both images go through."),
                io.Int.Input(
                    "resolution",
                    default=518,
                    min=14,
                    max=4096,
                    step=14,
                    tooltip="Shorter side the depth network sees, rounded to a multiple of 14.",
                ),
                io.Int.Input(
                    "edge_tolerance",
                    default=DEFAULT_TOLERANCE,
                    min=0,
                    max=64,
                    tooltip="Edges of the two images this many pixels apart still count as the same outline.",
                ),
                io.Image.Input(
                    "style_image",
                    optional=True,
                    tooltip="Connect the style image to also measure how close the stylised images come to "
                    "its style (Gram-matrix distance at VGG-16's style layers; lower is closer).",
                ),
                io.Boolean.Input(
                    "video",
                    default=False,
                    optional=True,
                    tooltip="The batch is the frames of one clip, in order: also measure how still the "
                    "stylised clip is (warping error between consecutive frames and frames 10 apart, "
                    "optical flow on the photos; the photos' own error is the floor). Needs OpenCV.",
                ),
            ],
            outputs=[
                io.Image.Output("report", display_name="report", tooltip="One figure per stylised image."),
                io.String.Output("metrics", display_name="metrics", tooltip="The numbers as JSON."),
            ],
        )

    @classmethod
    def validate_inputs(cls, video: bool = False) -> bool | str:
        """Measuring a clip's warping error without the OpenCV it needs is refused when the prompt is
        queued."""
        return (flow_problem() or True) if video else True

    @classmethod
    def execute(
        cls,
        image: torch.Tensor,
        stylized_image: torch.Tensor,
        depth_model: DepthEstimator,
        resolution: int,
        edge_tolerance: int,
        style_image: torch.Tensor | None = None,
        video: bool = False,
    ) -> io.NodeOutput:
        vgg = load_builtin_vgg() if style_image is not None else None
        style = comfy_to_bchw(style_image)[:1] if style_image is not None else None
        photos = comfy_to_bchw(image)
        batch, _, height, width = photos.shape
        with _on_device(depth_model, vgg, activation_bytes(height, width, resolution, 2 * batch)):
            reports = evaluate_structure(
                photos,
                comfy_to_bchw(stylized_image),
                depth_model,
                style=style,
                vgg=vgg,
                resolution=resolution,
                edge_tolerance=edge_tolerance,
                should_stop=should_stop,
            )
        settings = {"depth_model": depth_model.name, "depth_resolution": resolution}
        settings.update(edge_tolerance_px=edge_tolerance, style=style is not None)
        numbers = metrics_json(reports, settings)
        if video:
            numbers["video"] = _stillness(photos, comfy_to_bchw(stylized_image))
        text = json.dumps(numbers, indent=2)
        figures = to_comfy_image(figure_batch([draw_structure_figure(r) for r in reports]))
        shown = {"images": ui.PreviewImage(figures, cls=cls).values, **ui.PreviewText(text).as_dict()}
        return io.NodeOutput(figures, text, ui=shown)


def _stillness(photos: torch.Tensor, stylized: torch.Tensor) -> dict[str, object]:
    """The warping errors of the stylised frames and of the photos (see :mod:`.warp_error`)."""
    if photos.shape[0] != stylized.shape[0] or photos.shape[0] < 2:
        raise InputImageError(
            f"video needs the frames of one clip: as many photos as stylised frames, at least 2 (got "
            f"{photos.shape[0]} and {stylized.shape[0]})"
        )
    meter = WarpingErrorMeter(1, (1, LONG_GAP))
    for index in range(photos.shape[0]):
        if should_stop():
            raise OperationCancelled(f"the warping error stopped after {index} of {photos.shape[0]} frames")
        meter.add(photos[index], match_size(stylized[index : index + 1], tuple(photos.shape[-2:])))
    return {"frames": photos.shape[0], **warping_summary(meter)}


@contextmanager
def _on_device(depth_model: DepthEstimator, vgg: VGG16Features | None, activations: int) -> Iterator[None]:
    """The depth network, and VGG-16 when there is one, on ComfyUI's compute device for the block, with
    room for the depth passes' ``activations`` bytes."""
    with ExitStack() as stack:
        stack.enter_context(on_compute_device(depth_model.model, activations))
        if vgg is not None:
            stack.enter_context(on_compute_device(vgg))
        yield


REPORT_NODES: list[type[io.ComfyNode]] = [StructureReport]
