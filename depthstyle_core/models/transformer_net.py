"""Johnson's feed-forward image transformation network (TransformerNet), any input size.

The module tree reproduces the parameter names of pytorch/examples ``fast_neural_style``
(``conv1.conv2d.weight``, ``in1.weight``, ``res1.conv1.conv2d.weight``, ``deconv1.conv2d.weight``, ...),
so the community models load unchanged. Three switches give the paper's variant (Liu et al. 2017, after
Johnson's Lua code): batch norm, transposed-convolution upsampling and a bounded ``150 * tanh`` output.

Seam-free tiling: instance norm normalises with statistics of the whole image, so a tile run on its own
would be normalised differently from its neighbours. :meth:`TransformerNet.norm_stats` records the
statistics of every instance-norm layer for a whole image once; passing them to ``forward`` makes every
tile use the same numbers, and a tile's output then equals the untiled output away from its border
(further than :data:`RECEPTIVE_RADIUS` pixels). For an image too large for one pass,
:meth:`TransformerNet.norm_input` gives one layer's input for a tile, from which a caller can build the
same statistics layer by layer (``depthstyle_core.stylize`` does).

Flicker-free video: ``pool_batch=True`` (and ``norm_stats(x, pooled=True)``) normalises every image of a
batch with statistics pooled over the whole batch instead of its own, so the frames of a video share one
look. Pooled statistics are ``[1,C,1,1]`` and apply to any number of images.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import CheckpointError
from .padding import pad_to_valid

ARCHITECTURE = "TransformerNet"
NORMS = ("instance", "batch")
UPSAMPLES = ("nearest", "transposed")
OUTPUTS = ("linear", "tanh")

RECEPTIVE_RADIUS = 60  # output pixels depend on input pixels at most this far away (see tests)
TANH_SCALE = 150.0  # Johnson's -tanh_constant
CAFFE_MEAN_RGB = (123.68, 116.779, 103.939)  # the VGG mean the Lua output is centred on (0..255)

NormStats = dict[str, tuple[Tensor, Tensor]]
"""Per instance-norm layer (state-dict name, e.g. ``"res3.in2"``): (mean, var), each ``[B,C,1,1]`` fp32
(``[1,C,1,1]`` when pooled over the batch)."""


@dataclass(frozen=True)
class TransformerNetConfig:
    """Architecture switches; the defaults are the pytorch/examples (community) network."""

    norm: str = "instance"
    upsample: str = "nearest"
    output: str = "linear"

    def __post_init__(self) -> None:
        for name, allowed in (("norm", NORMS), ("upsample", UPSAMPLES), ("output", OUTPUTS)):
            value = getattr(self, name)
            if value not in allowed:
                raise ValueError(f"TransformerNet {name} must be one of {allowed}, got {value!r}")

    def to_metadata(self) -> dict[str, str]:
        """The architecture as safetensors metadata strings."""
        return {
            "architecture": ARCHITECTURE,
            **{f"net.{f.name}": getattr(self, f.name) for f in fields(self)},
        }

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, str]) -> TransformerNetConfig:
        """Rebuild from :meth:`to_metadata` output; a file without architecture keys is a community model."""
        architecture = metadata.get("architecture", ARCHITECTURE)
        if architecture != ARCHITECTURE:
            raise CheckpointError(
                f"this file holds a {architecture!r} model, not a style model ({ARCHITECTURE})"
            )
        values = {f.name: metadata.get(f"net.{f.name}", f.default) for f in fields(cls)}
        try:
            return cls(**values)
        except ValueError as exc:
            raise CheckpointError(f"unknown style-model architecture in the file's metadata: {exc}") from exc


class InstanceNorm(nn.InstanceNorm2d):
    """Affine instance norm whose statistics can be supplied from outside (for tiling)."""

    def __init__(self, channels: int) -> None:
        super().__init__(channels, affine=True)

    def forward(self, x: Tensor) -> Tensor:
        """Instance norm with statistics computed in fp32 (also under fp16/bf16 autocast). The fused
        inference kernel of :meth:`normalize` cannot pass gradients to the statistics, so training
        (gradients enabled) takes the plain instance norm in fp32."""
        if x.dtype == torch.float32 or torch.is_grad_enabled():
            return F.instance_norm(x.float(), weight=self.weight, bias=self.bias, eps=self.eps).to(x.dtype)
        var, mean = self.statistics(x)
        return self.normalize(x, mean, var)

    @staticmethod
    def statistics(x: Tensor, pooled: bool = False) -> tuple[Tensor, Tensor]:
        """(var, mean) per image and channel, ``[B,C,1,1]`` fp32; ``pooled``: per channel over the whole
        batch, ``[1,C,1,1]``."""
        return torch.var_mean(x.float(), dim=(0, 2, 3) if pooled else (2, 3), keepdim=True, correction=0)

    def normalize(self, x: Tensor, mean: Tensor, var: Tensor) -> Tensor:
        """Normalise with the given fp32 statistics; computed in fp32, returned in ``x``'s dtype.

        One fused pass: the images are folded into the channel axis so that batch norm's inference
        kernel applies each image's own statistics."""
        batch, channels = x.shape[:2]
        folded = x.float().reshape(1, batch * channels, *x.shape[2:])
        out = F.batch_norm(
            folded,
            mean.expand(batch, channels, 1, 1).reshape(-1),
            var.expand(batch, channels, 1, 1).reshape(-1),
            self.weight.float().repeat(batch),
            self.bias.float().repeat(batch),
            training=False,
            eps=self.eps,
        )
        return out.reshape(x.shape).to(x.dtype)


class _ReachedLayer(Exception):
    """Ends a pass early at the input of the requested norm layer (see TransformerNet.norm_input)."""

    def __init__(self, activation: Tensor) -> None:
        super().__init__()
        self.activation = activation


class _NormPass:
    """How one forward pass normalises: plain instance norm, recording statistics (per image or pooled over
    the batch), or fixed statistics; optionally stopping at the input of one instance-norm layer."""

    def __init__(
        self,
        fixed: Mapping[str, tuple[Tensor, Tensor]] | None = None,
        record: bool = False,
        stop_at: str | None = None,
        pooled: bool = False,
    ) -> None:
        self.fixed = fixed
        self.record = record or pooled
        self.stop_at = stop_at
        self.pooled = pooled
        self.recorded: NormStats = {}

    def __call__(self, name: str, norm: nn.Module, x: Tensor) -> Tensor:
        if name == self.stop_at:
            raise _ReachedLayer(x)
        if not isinstance(norm, InstanceNorm) or (self.fixed is None and not self.record):
            return norm(x)
        if self.fixed is not None:
            try:
                mean, var = self.fixed[name]
            except KeyError:
                raise ValueError(f"norm_stats has no statistics for layer {name!r}") from None
        else:
            var, mean = norm.statistics(x, self.pooled)
            self.recorded[name] = (mean, var)
        return norm.normalize(x, mean, var)


NormFn = Callable[[str, nn.Module, Tensor], Tensor]


def _make_norm(kind: str, channels: int) -> nn.Module:
    return InstanceNorm(channels) if kind == "instance" else nn.BatchNorm2d(channels)


class ConvLayer(nn.Module):
    """Reflection pad (k // 2) + convolution; the attribute name ``conv2d`` is part of the key layout."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> None:
        super().__init__()
        self.pad = kernel_size // 2
        self.conv2d = nn.Conv2d(in_channels, out_channels, kernel_size, stride)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv2d(F.pad(x, (self.pad,) * 4, mode="reflect"))


class UpsampleConvLayer(nn.Module):
    """x2 upsampling: nearest resize + reflection pad + 3x3 conv, or a learned stride-2 transposed conv."""

    def __init__(self, in_channels: int, out_channels: int, mode: str) -> None:
        super().__init__()
        self.mode = mode
        if mode == "nearest":
            self.conv2d: nn.Module = nn.Conv2d(in_channels, out_channels, 3)
        else:
            self.conv2d = nn.ConvTranspose2d(in_channels, out_channels, 3, 2, padding=1, output_padding=1)

    def forward(self, x: Tensor) -> Tensor:
        if self.mode == "transposed":
            return self.conv2d(x)
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        return self.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"))


class ResidualBlock(nn.Module):
    """conv3 -> norm -> ReLU -> conv3 -> norm, plus the input (no ReLU after the sum)."""

    def __init__(self, channels: int, norm: str) -> None:
        super().__init__()
        self.conv1 = ConvLayer(channels, channels, 3)
        self.in1 = _make_norm(norm, channels)
        self.conv2 = ConvLayer(channels, channels, 3)
        self.in2 = _make_norm(norm, channels)

    def forward(self, x: Tensor, norm_fn: NormFn, prefix: str) -> Tensor:
        h = F.relu(norm_fn(f"{prefix}.in1", self.in1, self.conv1(x)))
        return norm_fn(f"{prefix}.in2", self.in2, self.conv2(h)) + x


class TransformerNet(nn.Module):
    """Image transformation network: ``[B,3,H,W]`` in 0..1 -> stylised ``[B,3,H,W]`` in about 0..1.

    Works internally in 0..255 like pytorch/examples. Any ``H, W`` works: the input is padded to a
    multiple of 4 (at least 8) and the output cropped back. The output is not clamped (training needs
    the unclamped values); :func:`depthstyle_core.stylize.stylize` clamps.
    """

    variance_correction = 0  # instance norm's population variance (for statistics merged from tiles)

    def __init__(self, config: TransformerNetConfig | None = None) -> None:
        super().__init__()
        self.config = config or TransformerNetConfig()
        norm = self.config.norm
        self.conv1 = ConvLayer(3, 32, 9)
        self.in1 = _make_norm(norm, 32)
        self.conv2 = ConvLayer(32, 64, 3, 2)
        self.in2 = _make_norm(norm, 64)
        self.conv3 = ConvLayer(64, 128, 3, 2)
        self.in3 = _make_norm(norm, 128)
        self.res1 = ResidualBlock(128, norm)
        self.res2 = ResidualBlock(128, norm)
        self.res3 = ResidualBlock(128, norm)
        self.res4 = ResidualBlock(128, norm)
        self.res5 = ResidualBlock(128, norm)
        self.deconv1 = UpsampleConvLayer(128, 64, self.config.upsample)
        self.in4 = _make_norm(norm, 64)
        self.deconv2 = UpsampleConvLayer(64, 32, self.config.upsample)
        self.in5 = _make_norm(norm, 32)
        self.deconv3 = ConvLayer(32, 3, 9)
        if self.config.output == "tanh":
            self.register_buffer(
                "output_offset", torch.tensor(CAFFE_MEAN_RGB).view(1, 3, 1, 1), persistent=False
            )

    def forward(
        self,
        x: Tensor,
        norm_stats: Mapping[str, tuple[Tensor, Tensor]] | None = None,
        *,
        pool_batch: bool = False,
    ) -> Tensor:
        """Stylise 0..1 images. ``norm_stats`` (from :meth:`norm_stats`) replaces every instance-norm
        layer's own statistics, which is what makes tiles agree; batch-norm layers ignore it.
        ``pool_batch`` normalises every image with statistics pooled over the whole batch (video frames)."""
        if pool_batch and norm_stats is not None:
            raise ValueError("pass either norm_stats or pool_batch=True, not both")
        return self._run(x, _NormPass(fixed=norm_stats, pooled=pool_batch))

    @torch.no_grad()
    def norm_stats(self, x: Tensor, pooled: bool = False) -> NormStats:
        """Statistics of every instance-norm layer for ``x`` (empty for a batch-norm net): per image, or
        ``pooled`` over the whole batch as in ``forward(x, pool_batch=True)``."""
        norm_pass = _NormPass(record=True, pooled=pooled)
        self._run(x, norm_pass, stop_after_norms=True)
        return norm_pass.recorded

    def norm_layers(self) -> list[str]:
        """Names of the instance-norm layers in forward order (empty for a batch-norm net)."""
        return [name for name, module in self.named_modules() if isinstance(module, InstanceNorm)]

    @torch.no_grad()
    def norm_input(
        self, x: Tensor, layer: str, norm_stats: Mapping[str, tuple[Tensor, Tensor]] | None = None
    ) -> Tensor:
        """The input of instance-norm ``layer`` for ``x`` (padded by :func:`pad_to_valid`, not cropped),
        the layers before it normalised with ``norm_stats``. Lets a caller build whole-image statistics
        one layer at a time from tiles, when the whole image does not fit in memory."""
        if layer not in self.norm_layers():
            raise ValueError(f"{layer!r} is not an instance-norm layer of this network")
        try:
            self._run(x, _NormPass(fixed=norm_stats or {}, stop_at=layer))
        except _ReachedLayer as reached:
            return reached.activation
        raise AssertionError(f"the forward pass never reached {layer!r}")

    def _run(self, x: Tensor, norm_fn: _NormPass, stop_after_norms: bool = False) -> Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"TransformerNet expects [B,3,H,W] images, got shape {tuple(x.shape)}")
        height, width = x.shape[-2:]
        h = pad_to_valid(x * 255.0)
        h = F.relu(norm_fn("in1", self.in1, self.conv1(h)))
        h = F.relu(norm_fn("in2", self.in2, self.conv2(h)))
        h = F.relu(norm_fn("in3", self.in3, self.conv3(h)))
        for index in range(1, 6):
            h = getattr(self, f"res{index}")(h, norm_fn, f"res{index}")
        h = F.relu(norm_fn("in4", self.in4, self.deconv1(h)))
        h = F.relu(norm_fn("in5", self.in5, self.deconv2(h)))
        if stop_after_norms:
            return h
        y = self.deconv3(h)[..., :height, :width]
        if self.config.output == "tanh":
            y = TANH_SCALE * torch.tanh(y) + self.output_offset.to(y.dtype)
        return y / 255.0


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters())
