"""The frozen loss networks (VGG-16, Depth Anything) as an optimisation loop needs them.

ComfyUI runs every node under ``torch.inference_mode``; a network loaded there holds inference tensors,
which autograd cannot save for the backward pass. Both loops in this package (training a style network,
optimising an image) therefore take their loss networks through :func:`autograd_ready`.
"""

from __future__ import annotations

import copy

from torch import nn

from ..depthstyle_core.depth import DepthEstimator
from ..depthstyle_core.models.depth_anything import DepthAnythingV2


def autograd_ready(module: nn.Module) -> nn.Module:
    """``module`` itself, or a copy if it was built under ``torch.inference_mode`` (its tensors could
    not take part in autograd). Frozen and in eval mode either way. Call it with inference mode off."""
    if any(t.is_inference() for t in [*module.parameters(), *module.buffers()]):
        module = copy.deepcopy(module)
    return module.requires_grad_(False).train(False)


def depth_network(
    depth_model: DepthAnythingV2 | DepthEstimator | None,
) -> tuple[DepthAnythingV2 | None, str]:
    """The network inside a depth model argument (a loaded estimator or a bare network) and its name."""
    if depth_model is None:
        return None, "none"
    if isinstance(depth_model, DepthEstimator):
        return depth_model.model, depth_model.name
    config = getattr(depth_model, "config", None)
    return depth_model, f"{type(depth_model).__name__}({config})" if config else type(depth_model).__name__
