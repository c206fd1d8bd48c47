"""Input widgets that several DepthStyle nodes share, so that they look and validate the same."""

from __future__ import annotations

from comfy_api.v0_0_2 import io

MAX_WEIGHT = 1000.0


def loss_weight_input(name: str, default: float, tooltip: str) -> io.Float.Input:
    """A scale-free loss weight (content, style, depth): 0 to 1000 in steps of 0.1."""
    return io.Float.Input(name, default=default, min=0.0, max=MAX_WEIGHT, step=0.1, tooltip=tooltip)
