"""Mask nodes: a per-pixel style strength from depth.

Node ids, input names and combo values are permanent once released: saved workflows refer to them.
"""

from __future__ import annotations

import torch
from comfy_api.v0_0_2 import io

from ..depthstyle_core.images import comfy_to_bchw
from ..depthstyle_core.masks import DEFAULT_FAR, DEFAULT_NEAR, DEFAULT_SOFTNESS, depth_to_mask
from .comfy_services import to_comfy_mask

MAX_FEATHER = 256


class DepthToMask(io.ComfyNode):
    """A mask (1 = full style) that selects a band of depth: the subject near the camera, or everything
    behind it with ``invert``."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="DepthStyle_DepthToMask",
            display_name="DepthStyle Depth To Mask",
            category="DepthStyle/depth",
            description=(
                "Turns a depth map (near = white, as DepthStyle Estimate Depth gives it) into a mask: 1 "
                "where the depth lies between far and near, falling to 0 over 'softness' outside that band. "
                "Connect it to DepthStyle Stylize's mask to stylise only that part; invert it to keep the "
                "subject near the camera recognisable while the background turns into the painting."
            ),
            inputs=[
                io.Image.Input("depth", tooltip="Normalised depth, near = white (1), far = black (0)."),
                io.Float.Input(
                    "near",
                    default=DEFAULT_NEAR,
                    min=0.0,
                    max=1.0,
                    step=0.01,
                    tooltip="The nearer end of the selected depth band (1 = the nearest point).",
                ),
                io.Float.Input(
                    "far",
                    default=DEFAULT_FAR,
                    min=0.0,
                    max=1.0,
                    step=0.01,
                    tooltip="The farther end of the selected depth band (0 = the farthest point). At most "
                    "'near'. Example: near 1, far 0.5 selects the nearer half of the scene.",
                ),
                io.Float.Input(
                    "softness",
                    default=DEFAULT_SOFTNESS,
                    min=0.0,
                    max=1.0,
                    step=0.01,
                    tooltip="How far outside the band (in depth, 0..1) the mask fades linearly from 1 to 0. "
                    "0 = a hard edge. With near 1, far 0.5, softness 0.2: depth 0.4 gives 0.5, 0.3 gives 0.",
                ),
                io.Int.Input(
                    "feather",
                    default=0,
                    min=0,
                    max=MAX_FEATHER,
                    step=1,
                    tooltip="Blur radius in pixels (Gaussian, sigma = radius / 2) that softens the mask's "
                    "edges in the image. 0 = no blur.",
                ),
                io.Boolean.Input(
                    "invert",
                    default=False,
                    tooltip="Swap 1 and 0: stylise everything except the band.",
                ),
            ],
            outputs=[io.Mask.Output("mask", display_name="mask", tooltip="1 = full style, 0 = unchanged.")],
        )

    @classmethod
    def execute(
        cls, depth: torch.Tensor, near: float, far: float, softness: float, feather: int, invert: bool
    ) -> io.NodeOutput:
        mask = depth_to_mask(
            comfy_to_bchw(depth), near=near, far=far, softness=softness, feather=feather, invert=invert
        )
        return io.NodeOutput(to_comfy_mask(mask))


MASK_NODES: list[type[io.ComfyNode]] = [DepthToMask]
