"""A custom node folder for the tests only: it shows the tests what ComfyUI's model management holds.

``GET /depthstyle_probe/loaded`` lists the class names of the models in
``comfy.model_management.current_loaded_models``; ``POST /depthstyle_probe/hold`` loads a small model
of ComfyUI's own kind (a ModelPatcher, as ComfyUI wraps its checkpoints) and keeps it, standing for the
diffusion model of a busy graph. No nodes.
"""

import comfy.model_management as model_management
import torch
from aiohttp import web
from comfy.model_patcher import ModelPatcher
from server import PromptServer

NODE_CLASS_MAPPINGS: dict = {}
HELD: list[ModelPatcher] = []


class ComfyProbeNet(torch.nn.Linear):
    """The model the probe holds."""


@PromptServer.instance.routes.get("/depthstyle_probe/loaded")
async def loaded(request: web.Request) -> web.Response:
    models = [entry.model for entry in model_management.current_loaded_models]
    return web.json_response({"loaded": sorted(type(m.model).__name__ for m in models if m is not None)})


@PromptServer.instance.routes.post("/depthstyle_probe/hold")
async def hold(request: web.Request) -> web.Response:
    patcher = ModelPatcher(
        ComfyProbeNet(64, 64),
        load_device=model_management.get_torch_device(),
        offload_device=model_management.unet_offload_device(),
    )
    model_management.load_models_gpu([patcher])
    HELD.append(patcher)
    return web.json_response({"held": len(HELD)})
