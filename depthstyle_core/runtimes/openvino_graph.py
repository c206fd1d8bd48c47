"""Our network modules written as OpenVINO graph nodes, with the weights they hold.

OpenVINO's own converter (``openvino.convert_model``) traces a module and, unless the user opted out,
sends usage telemetry and writes files under the home folder; a node pack must do neither. So the few
module types our CPU-heavy networks are made of are described here directly in OpenVINO's stable
operation sets, module by module from the torch tree: the structure and weights always come from the
torch network, and a module type this file does not know is an error, never a guess.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import openvino.opset13 as ops
from torch import nn

from ..models.microast import ConvLayer, ResidualLayer

Node = Any
"""An OpenVINO node output (``openvino.Output``)."""

PHASES = 4
"""The polyphase split of a large convolution (see :func:`_polyphase_conv`)."""


class UnsupportedModule(TypeError):
    """A module type that has no OpenVINO description here."""


def module_graph(module: nn.Module, x: Node, multiple: int = 1) -> Node:
    """The output of ``module`` (plain, not modulated) for the node ``x``, whose sides are known to be
    multiples of ``multiple`` (which lets a large convolution run in its faster polyphase form)."""
    return _graph(module, x, multiple)[0]


def _graph(module: nn.Module, x: Node, multiple: int) -> tuple[Node, int]:
    """``module``'s output and what its sides are multiples of."""
    if isinstance(module, nn.Sequential):
        for child in module:
            x, multiple = _graph(child, x, multiple)
        return x, multiple
    if isinstance(module, ConvLayer):
        stride = module.conv_layer.stride[0]
        return conv_layer(module, x, multiple), max(multiple // stride, 1)
    if isinstance(module, ResidualLayer):
        return residual(module, x), multiple
    if isinstance(module, nn.ReLU):
        return ops.relu(x).output(0), multiple
    if isinstance(module, nn.Upsample):
        return upsample(module, x), multiple * 2
    if isinstance(module, nn.AdaptiveAvgPool2d) and module.output_size in (1, (1, 1)):
        return spatial_mean(x), 1
    raise UnsupportedModule(f"no OpenVINO description of {type(module).__name__}")


def conv_layer(layer: ConvLayer, x: Node, multiple: int = 1) -> Node:
    """Reflection pad + convolution (grouped when the layer is) + bias."""
    conv = layer.conv_layer
    if conv.padding != (0, 0) or conv.dilation != (1, 1) or conv.bias is None:
        raise UnsupportedModule("a convolution with its own padding, dilation or no bias")
    if layer.pad:
        edge = [0, 0, layer.pad, layer.pad]
        x = ops.pad(x, edge, edge, "reflect").output(0)
    weight = conv.weight.detach().float().cpu().numpy()
    bias = conv.bias.detach().float().cpu().numpy()
    stride, zero = list(conv.stride), [0, 0]
    if _polyphase_pays(conv, layer.pad, multiple):
        return _polyphase_conv(x, weight, bias)
    if conv.groups == 1:
        out = ops.convolution(x, ops.constant(weight), stride, zero, zero, [1, 1])
    elif conv.out_channels == conv.groups < conv.in_channels:
        out = _summed_depthwise_conv(x, weight, stride)
    else:
        grouped = weight.reshape(conv.groups, -1, *weight.shape[1:])
        out = ops.group_convolution(x, ops.constant(grouped), stride, zero, zero, [1, 1])
    return ops.add(out, ops.constant(bias.reshape(1, -1, 1, 1))).output(0)


def _summed_depthwise_conv(x: Node, weight: np.ndarray, stride: list[int]) -> Node:
    """A grouped convolution with one output per group (MicroAST's head: each output channel from two
    inputs) as what it is: a depthwise convolution of every input channel with its own filter, then
    each group's channels summed (a 1x1 convolution of zeros and ones). The CPU plugin runs the two
    far faster than the grouped form, which it has no specialised kernel for."""
    groups, per_group = weight.shape[:2]
    depthwise = weight.reshape(groups * per_group, 1, 1, *weight.shape[2:])
    out = ops.group_convolution(x, ops.constant(depthwise), stride, [0, 0], [0, 0], [1, 1])
    summing = np.repeat(np.eye(groups, dtype=np.float32), per_group, axis=1)[:, :, None, None]
    return ops.convolution(out, ops.constant(summing), [1, 1], [0, 0], [0, 0], [1, 1]).output(0)


def _polyphase_pays(conv: nn.Conv2d, pad: int, multiple: int) -> bool:
    """A large plain convolution to a few channels (MicroAST's last, 16 -> 3 at 9x9) uses a small
    fraction of the CPU's vector lanes, which work across output channels; its polyphase form has 16
    times as many. It needs sides (padded) that are multiples of :data:`PHASES`."""
    return (
        conv.groups == 1
        and conv.stride == (1, 1)
        and conv.out_channels < 8
        and min(conv.kernel_size) >= 5
        and multiple % PHASES == 0
        and (2 * pad) % PHASES == 0
    )


def _polyphase_conv(x: Node, weight: np.ndarray, bias: np.ndarray) -> Node:
    """The same convolution (valid, stride 1) on the image cut into PHASES x PHASES interleaved
    sub-images (space-to-depth), as one convolution between them, put back together (depth-to-space).

    Output pixel ``(P*Y + r, ...)`` takes input pixel ``(P*Y + r + d, ...)`` with kernel tap ``d``;
    written as ``P*(Y + q) + t`` that is sub-image ``t`` at offset ``q``, so the sub-images' kernel has
    the tap ``d = P*q + t - r`` at ``[(out, r), (in, t), q]`` and zeros where no tap lands."""
    outs, ins, size, _ = weight.shape
    taps = (size - 1 + PHASES - 1) // PHASES + 1
    phased = np.zeros((outs, PHASES, PHASES, ins, PHASES, PHASES, taps, taps), dtype=np.float32)
    for r_y, r_x, t_y, t_x, q_y, q_x in np.ndindex(PHASES, PHASES, PHASES, PHASES, taps, taps):
        d_y, d_x = PHASES * q_y + t_y - r_y, PHASES * q_x + t_x - r_x
        if 0 <= d_y < size and 0 <= d_x < size:
            phased[:, r_y, r_x, :, t_y, t_x, q_y, q_x] = weight[:, :, d_y, d_x]
    phased = phased.reshape(outs * PHASES * PHASES, ins * PHASES * PHASES, taps, taps)
    split = ops.space_to_depth(x, "depth_first", PHASES)
    out = ops.convolution(split, ops.constant(phased), [1, 1], [0, 0], [0, 0], [1, 1])
    out = ops.add(out, ops.constant(np.repeat(bias, PHASES * PHASES).reshape(1, -1, 1, 1)))
    return ops.depth_to_space(out, "depth_first", PHASES).output(0)


def residual(block: ResidualLayer, x: Node, weight: Node | None = None, bias: Node | None = None) -> Node:
    """:class:`ResidualLayer`'s forward, modulated by ``weight`` and ``bias`` when given."""
    if weight is None or bias is None:
        return ops.add(x, conv_layer(block.conv2, ops.relu(conv_layer(block.conv1, x)))).output(0)
    hidden = ops.relu(ops.add(ops.multiply(weight, conv_layer(block.conv1, x)), ops.multiply(bias, x)))
    changed = ops.add(ops.multiply(weight, conv_layer(block.conv2, hidden)), ops.multiply(bias, hidden))
    return ops.add(x, changed).output(0)


def upsample(layer: nn.Upsample, x: Node) -> Node:
    """Bilinear x2 without corner alignment (the only upsampling our networks use)."""
    factor = layer.scale_factor
    factors = tuple(factor) if isinstance(factor, tuple) else (factor, factor)
    if layer.mode != "bilinear" or layer.align_corners or factors != (2.0, 2.0):
        raise UnsupportedModule(
            f"upsampling {layer.mode} x{factor} (align_corners={layer.align_corners}); only bilinear x2"
        )
    scales = ops.constant(np.array([2.0, 2.0], dtype=np.float32))
    axes = ops.constant(np.array([2, 3], dtype=np.int64))
    out = ops.interpolate(
        x, scales, "linear_onnx", "scales", coordinate_transformation_mode="half_pixel", axes=axes
    )
    return out.output(0)


def spatial_mean(x: Node) -> Node:
    """Each image's and channel's mean, ``[N,C,1,1]``."""
    return ops.reduce_mean(x, ops.constant(np.array([2, 3], dtype=np.int64)), True).output(0)


def mean_std(x: Node, eps: float) -> tuple[Node, Node]:
    """Each image's and channel's mean and ``sqrt(unbiased variance + eps)``, as
    :func:`..models.microast.mean_std` (the unbiased variance scales the plain one by n / (n - 1))."""
    mean = spatial_mean(x)
    deviation = ops.subtract(x, mean)
    plain = spatial_mean(ops.multiply(deviation, deviation).output(0))
    sides = ops.gather(ops.shape_of(x), ops.constant(np.array([2, 3], dtype=np.int64)), 0)
    count = ops.convert(ops.reduce_prod(sides, 0), "f32")
    unbiased = ops.divide(ops.multiply(plain, count), ops.subtract(count, np.float32(1)))
    return mean, ops.sqrt(ops.add(unbiased, np.float32(eps))).output(0)


def image_input(name: str, channels: int) -> Node:
    """A float32 ``[N, channels, H, W]`` input of any batch and size."""
    return ops.parameter([-1, channels, -1, -1], np.float32, name=name).output(0)
