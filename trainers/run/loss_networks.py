"""The frozen loss networks (VGG-16, Depth Anything) as an optimisation loop needs them, and the
precision and memory format the loops run them in, and the depth loss through the depth network.

ComfyUI runs every node under ``torch.inference_mode``; a network loaded there holds inference tensors,
which autograd cannot save for the backward pass. Both loops in this package (training a style network,
optimising an image) therefore take their loss networks through :func:`autograd_ready`.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ...depthstyle_core.depth import DepthEstimator, depth_for_loss
from ...depthstyle_core.errors import SettingsError
from ...depthstyle_core.losses import depth_loss
from ...depthstyle_core.models.depth_anything import DepthAnythingV2


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


def weighted_depth_network(
    depth_model: DepthAnythingV2 | DepthEstimator | None, depth_weight: float
) -> tuple[DepthAnythingV2 | None, str]:
    """:func:`depth_network`, refusing a depth weight with no depth model to use it."""
    network, name = depth_network(depth_model)
    if depth_weight > 0 and network is None:
        raise SettingsError(
            f"depth_weight is {depth_weight} but no depth model was given: pass "
            "depth_model=load_depth_model(...), or set depth_weight=0 to train without the depth loss"
        )
    return network, name


@dataclass(frozen=True)
class DevicePrecision:
    """How a loop runs its networks on one device: an autocast context (bf16 or none) and the memory
    format of images and convolution weights."""

    autocast: Callable[[], AbstractContextManager]
    memory_format: torch.memory_format


def cpu_has_native_bf16() -> bool:
    """True on a CPU whose oneDNN kernels compute in bf16 natively (AVX512-BF16 or AMX), where bf16
    convolutions are faster than fp32 instead of emulated."""
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    try:
        return bool(check()) if check is not None else False
    except RuntimeError:
        return False


def device_precision(device: torch.device, precision: str) -> DevicePrecision:
    """``precision`` "auto": bf16 autocast and channels-last on a CUDA device that supports bf16, fp32
    elsewhere; "fp32": never autocast; "bf16": bf16 autocast on CUDA, or on a CPU with native bf16
    (opt-in there: faster, less exact), refused where bf16 would be emulated."""
    cuda = device.type == "cuda"
    if precision == "bf16" and not cuda:
        if device.type != "cpu" or not cpu_has_native_bf16():
            raise ValueError(
                "bf16 needs a CUDA device or a CPU with native bf16 (AVX512-BF16/AMX); use precision "
                "'fp32' or 'auto' here"
            )
        return DevicePrecision(lambda: torch.autocast("cpu", dtype=torch.bfloat16), torch.contiguous_format)
    use_bf16 = cuda and precision != "fp32" and torch.cuda.is_bf16_supported()
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if use_bf16 else contextlib.nullcontext
    return DevicePrecision(autocast, torch.channels_last if cuda else torch.contiguous_format)


def depth_term(
    model: DepthAnythingV2, stylised: Tensor, content: Tensor, resolution: int, mode: str
) -> Tensor:
    """The depth loss of stylised images against their content images; the content's depth is computed
    without gradients. Resized in fp32; the network itself follows the autocast setting."""
    with torch.no_grad():
        target = depth_for_loss(model, content.float(), resolution)
    predicted = depth_for_loss(model, stylised.float(), resolution)
    return depth_loss(predicted.float(), target.float(), mode)
