"""DepthStyle: depth-aware neural style transfer for ComfyUI.

ComfyUI imports this file when it loads the pack. It exports only the V3 entry point and imports
nothing heavy: the nodes (and torch) are loaded when ComfyUI asks for the extension.
"""


async def comfy_entrypoint():
    """Return the ComfyUI extension that lists the DepthStyle nodes."""
    from .nodes.extension import DepthStyleExtension

    return DepthStyleExtension()
