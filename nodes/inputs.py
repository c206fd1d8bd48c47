"""Input widgets that several DepthStyle nodes share, so that they look and validate the same."""

from __future__ import annotations

from comfy_api.v0_0_2 import io

from ..depthstyle_core.stylize import FRAMES, PRECISIONS
from ..depthstyle_core.tiling import SMALLEST_TILE
from ..depthstyle_core.video.flow import flow_problem

MAX_WEIGHT = 1000.0
MAX_TILE = 16384


def tile_problem(name: str, tile: int, zero_means: str) -> bool | str:
    """``validate_inputs``' answer for a tile side: True, or what is wrong. A node that validates an
    input itself loses ComfyUI's range check for it, so the range is checked here too."""
    if tile == 0 or SMALLEST_TILE <= tile <= MAX_TILE:
        return True
    return f"{name} must be 0 ({zero_means}) or from {SMALLEST_TILE} to {MAX_TILE} pixels, got {tile}"


def frames_problem(frames: str) -> bool | str:
    """``validate_inputs``' answer for the frames combo: True, or what is wrong (an unknown value, or
    'flow' without the OpenCV it needs), before anything runs."""
    if frames not in FRAMES:
        return f"frames must be one of {', '.join(FRAMES)}, got {frames!r}"
    if frames == "flow":
        return flow_problem() or True
    return True


def loss_weight_input(name: str, default: float, tooltip: str) -> io.Float.Input:
    """A scale-free loss weight (content, style, depth): 0 to 1000 in steps of 0.1."""
    return io.Float.Input(name, default=default, min=0.0, max=MAX_WEIGHT, step=0.1, tooltip=tooltip)


def preserve_color_input() -> io.Boolean.Input:
    """Keep the photo's colours, take only the style's brightness pattern."""
    return io.Boolean.Input(
        "preserve_color",
        default=False,
        tooltip="Keep the input's colours and take only the brightness pattern from the style.",
    )


def precision_input() -> io.Combo.Input:
    """fp32 / fp16 / bf16 for stylising on a GPU (optional: older workflows may lack it)."""
    return io.Combo.Input(
        "precision",
        options=list(PRECISIONS),
        default="fp32",
        optional=True,
        tooltip="fp16/bf16 are faster on a GPU (a tile that overflows is redone in fp32). The CPU always "
        "uses fp32.",
    )


def frames_input(*, optional: bool) -> io.Combo.Input:
    """Each image's own look, one look shared by the frames of a video, or that look held still along
    the optical flow. 'flow' came after the others: saved workflows keep their value."""
    return io.Combo.Input(
        "frames",
        options=list(FRAMES),
        default="independent",
        optional=optional,
        tooltip="independent: each image gets its own look (still images). shared: every frame of the batch "
        "is normalised with statistics of the whole batch, so the same content looks the same in every "
        "frame (video, no global flicker). flow: shared, and the brush strokes stay on moving things "
        "instead of swimming, following the optical flow between the frames (the batch in order; needs "
        "OpenCV).",
    )


def mask_input() -> io.Mask.Input:
    """Per-pixel strength: where to stylise."""
    return io.Mask.Input(
        "mask",
        optional=True,
        tooltip="Where to stylise: 1 (white) = full style, 0 = the input unchanged, in between = partly "
        "(strength x mask). One mask for every image, one per image, or a few taken in turn as ComfyUI "
        "repeats a batch; resized if its size differs. "
        "DepthStyle Depth To Mask makes one from depth.",
    )
