"""The ComfyUI extension object that ``comfy_entrypoint`` returns: it lists the DepthStyle nodes."""

from __future__ import annotations

from comfy_api.v0_0_2 import ComfyExtension, io

from .any_painting_nodes import ANY_PAINTING_NODES
from .comfy_services import register_model_folders
from .depth_nodes import DEPTH_NODES
from .mask_nodes import MASK_NODES
from .optimize_nodes import OPTIMIZE_NODES
from .report_nodes import REPORT_NODES
from .stylize_nodes import STYLIZE_NODES
from .train_nodes import TRAIN_NODES


class DepthStyleExtension(ComfyExtension):
    """Registers the model folders, then hands ComfyUI the node classes."""

    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        # Folders first: the loaders' combos list their files as soon as ComfyUI reads the schemas.
        # (ComfyUI 0.3.64 never calls on_load, so this cannot wait for it.)
        register_model_folders()
        return [
            *DEPTH_NODES,
            *MASK_NODES,
            *ANY_PAINTING_NODES,
            *STYLIZE_NODES,
            *OPTIMIZE_NODES,
            *TRAIN_NODES,
            *REPORT_NODES,
        ]
