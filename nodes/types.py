"""The custom ComfyUI types that DepthStyle's nodes pass between them (names are permanent)."""

from comfy_api.v0_0_2 import io

DepthModelType = io.Custom("DEPTHSTYLE_DEPTH_MODEL")
StyleModelType = io.Custom("DEPTHSTYLE_STYLE_MODEL")
