"""What :func:`~.feedforward.train_style` is given, made ready: frozen loss networks, the depth
network and its name, the content source, the style image's fingerprint."""

from __future__ import annotations

import copy
import hashlib
import os

import torch
from torch import Tensor, nn

from ..depthstyle_core.depth import DepthEstimator
from ..depthstyle_core.models.depth_anything import DepthAnythingV2
from .data import ContentSource


def fingerprint_tensor(tensor: Tensor) -> str:
    """sha256 of the tensor's float32 values (the style image a run was trained on)."""
    return hashlib.sha256(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes()).hexdigest()


def autograd_ready(module: nn.Module) -> nn.Module:
    """``module`` itself, or a copy if it was built under ``torch.inference_mode`` (its tensors could
    not take part in autograd). Frozen and in eval mode either way."""
    if any(t.is_inference() for t in [*module.parameters(), *module.buffers()]):
        module = copy.deepcopy(module)
    return module.requires_grad_(False).train(False)


def depth_network(
    depth_model: DepthAnythingV2 | DepthEstimator | None,
) -> tuple[DepthAnythingV2 | None, str]:
    """The depth network inside ``depth_model`` and the name recorded with the run."""
    if depth_model is None:
        return None, "none"
    if isinstance(depth_model, DepthEstimator):
        return depth_model.model, depth_model.name
    config = getattr(depth_model, "config", None)
    return depth_model, f"{type(depth_model).__name__}({config})" if config else type(depth_model).__name__


def as_content_source(content: ContentSource | Tensor | str | os.PathLike) -> ContentSource:
    """A :class:`ContentSource` from a source, an image batch or a folder path."""
    if isinstance(content, ContentSource):
        return content
    if isinstance(content, Tensor):
        return ContentSource.from_tensor(content)
    return ContentSource.from_folder(content)
