"""MicroAST (Wang et al., AAAI 2023): any painting in one forward pass, with no VGG at inference.

Our implementation of the network whose weights the authors published under MIT (key layout and forward
pass in ``reference/arbitrary_style.md``). Four parts, each stored under its own prefix in our safetensors
file, with the published state dicts' names below the prefix:

- ``content_encoder`` and ``style_encoder``: the same small encoder (9x9 conv, two depthwise stride-2
  convs, residual blocks), each returning two 64-channel feature maps at 1/4 resolution;
- ``modulator``: from the painting's two feature maps, a per-channel weight and bias for each of the
  decoder's two residual blocks (depthwise conv + global average);
- ``decoder``: two modulated residual blocks, each after an AdaIN, then x2, x2 upsampling to RGB.

What the decoder takes from a painting is a handful of per-channel numbers, the :class:`StyleSignals`:
for each of its two stages, the AdaIN target (mean and std of one style-encoder feature map) and the
modulation (weight and bias). Blending signals, rather than pictures, is how several paintings mix and
how a partial strength keeps brush texture (see :mod:`..any_style.strength`). The content statistics
at the two AdaIN points are the only whole-image quantities; :meth:`MicroAST.stage` takes normalised
features so that a caller can normalise with statistics from elsewhere (tiles, video frames).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .padding import pad_to_valid

ARCHITECTURE = "MicroAST"
PARTS = ("content_encoder", "style_encoder", "modulator", "decoder")
CHANNELS = 64
EPS = 1e-5  # added to the variance before the square root, as in the authors' AdaIN


class ConvLayer(nn.Module):
    """Reflection pad ``k // 2`` + convolution; ``conv_layer`` is part of the published key names."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, groups: int = 1
    ):
        super().__init__()
        self.pad = kernel_size // 2
        self.conv_layer = nn.Conv2d(in_channels, out_channels, kernel_size, stride, groups=groups)

    def forward(self, x: Tensor) -> Tensor:
        if self.pad:
            x = F.pad(x, (self.pad,) * 4, mode="reflect")
        return self.conv_layer(x)


class ResidualLayer(nn.Module):
    """Two 3x3 convs with a ReLU between, plus the input; optionally modulated by a painting.

    Modulated (``weight``, ``bias`` per channel, or per pixel when a strength map blends them):
    ``a = w * conv1(x) + b * x``, ``r = relu(a)``, ``x + w * conv2(r) + b * r``.
    """

    def __init__(self, channels: int = CHANNELS) -> None:
        super().__init__()
        self.conv1 = ConvLayer(channels, channels, 3)
        self.conv2 = ConvLayer(channels, channels, 3)

    def forward(self, x: Tensor, weight: Tensor | None = None, bias: Tensor | None = None) -> Tensor:
        if weight is None or bias is None:
            return x + self.conv2(F.relu(self.conv1(x)))
        hidden = F.relu(weight * self.conv1(x) + bias * x)
        return x + weight * self.conv2(hidden) + bias * hidden


class Encoder(nn.Module):
    """RGB 0..1 -> two 64-channel feature maps at 1/4 resolution (``enc1`` output, then ``enc2``'s)."""

    def __init__(self) -> None:
        super().__init__()
        self.enc1 = nn.Sequential(
            ConvLayer(3, 16, 9),
            nn.ReLU(),
            ConvLayer(16, 32, 3, stride=2, groups=16),
            nn.ReLU(),
            ConvLayer(32, 32, 1),
            nn.ReLU(),
            ConvLayer(32, 64, 3, stride=2, groups=32),
            nn.ReLU(),
            ConvLayer(64, 64, 1),
            nn.ReLU(),
            ResidualLayer(),
        )
        self.enc2 = nn.Sequential(ResidualLayer())

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        first = self.enc1(x)
        return first, self.enc2(first)


def _modulation_branch() -> nn.Sequential:
    return nn.Sequential(ConvLayer(CHANNELS, CHANNELS, 3, groups=CHANNELS), nn.AdaptiveAvgPool2d(1))


class Modulator(nn.Module):
    """Per-channel weight and bias ``[B,64,1,1]`` for each decoder stage, from the style features."""

    def __init__(self) -> None:
        super().__init__()
        self.weight1 = _modulation_branch()
        self.bias1 = _modulation_branch()
        self.weight2 = _modulation_branch()
        self.bias2 = _modulation_branch()


class Decoder(nn.Module):
    """Two modulated residual blocks (``dec1``, ``dec2``) and the x4 upsampling head ``dec3``."""

    def __init__(self) -> None:
        super().__init__()
        self.dec1 = ResidualLayer()
        self.dec2 = ResidualLayer()
        self.dec3 = nn.Sequential(
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
            ConvLayer(64, 32, 3, groups=32),
            nn.ReLU(),
            ConvLayer(32, 32, 1),
            nn.ReLU(),
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
            ConvLayer(32, 16, 3, groups=16),
            nn.ReLU(),
            ConvLayer(16, 16, 1),
            nn.ReLU(),
            ConvLayer(16, 3, 9),
        )


@dataclass(frozen=True)
class StageSignals:
    """What one decoder stage takes from a painting: the AdaIN target ``mean``/``std`` and the
    modulation ``weight``/``bias``; each ``[B,64,1,1]``, or ``[B,64,h,w]`` when blended per pixel."""

    mean: Tensor
    std: Tensor
    weight: Tensor
    bias: Tensor


@dataclass(frozen=True)
class StyleSignals:
    """A painting's signals for the decoder's two stages (``stages[0]`` at ``adain1``)."""

    stages: tuple[StageSignals, StageSignals]

    def map(self, fn: Callable[..., Tensor], *others: StyleSignals) -> StyleSignals:
        """Apply ``fn`` field by field to these signals and ``others`` (same structure)."""
        return StyleSignals(
            tuple(  # type: ignore[arg-type]
                StageSignals(
                    **{
                        f.name: fn(getattr(stage, f.name), *(getattr(o, f.name) for o in other_stages))
                        for f in fields(StageSignals)
                    }
                )
                for stage, *other_stages in zip(self.stages, *(o.stages for o in others), strict=True)
            )
        )

    def lerp(self, other: StyleSignals, amount: float | Tensor) -> StyleSignals:
        """``self + amount * (other - self)``; ``amount`` a number or a map ``[B,1,h,w]`` (per pixel)."""
        return self.map(lambda a, b: a + amount * (b - a), other)

    @property
    def batch(self) -> int:
        return self.stages[0].mean.shape[0]

    def select(self, index: slice) -> StyleSignals:
        """The signals of some images of the batch (signals of one image apply to any batch)."""
        return self if self.batch == 1 else self.map(lambda t: t[index])


class MicroASTParts(Protocol):
    """What stylising runs of MicroAST: the network itself, or the same parts on another runtime
    (:mod:`...runtimes`)."""

    def style_signals(self, style: Tensor) -> StyleSignals: ...

    def content_features(self, content: Tensor) -> Tensor: ...

    def stage(self, index: int, normalized: Tensor, signals: StageSignals) -> Tensor: ...

    def head(self, x: Tensor) -> Tensor: ...


def mean_std(x: Tensor, correction: int = 1) -> tuple[Tensor, Tensor]:
    """Per image and channel ``[B,C,1,1]`` mean and ``sqrt(var + EPS)``, in fp32; the unbiased variance
    (``correction=1``) is the authors'."""
    var, mean = torch.var_mean(x.float(), dim=(2, 3), keepdim=True, correction=correction)
    return mean, (var + EPS).sqrt()


def instance_normalize(x: Tensor) -> Tensor:
    """The authors' normalisation before AdaIN: each image by its own statistics."""
    mean, std = mean_std(x)
    return ((x.float() - mean) / std).to(x.dtype)


class MicroAST(nn.Module):
    """The any-painting network. ``forward(content, style)`` is the authors' result (their alpha 1) for
    0..1 RGB images of any size; the parts below let callers blend signals and control statistics."""

    def __init__(self) -> None:
        super().__init__()
        self.content_encoder = Encoder()
        self.style_encoder = Encoder()
        self.modulator = Modulator()
        self.decoder = Decoder()

    def style_signals(self, style: Tensor) -> StyleSignals:
        """A painting's signals ``[B,...]`` from 0..1 RGB ``[B,3,H,W]`` (any size)."""
        first, second = self.style_encoder(pad_to_valid(style))
        mod = self.modulator
        stages = []
        for features, weight, bias in ((second, mod.weight2, mod.bias2), (first, mod.weight1, mod.bias1)):
            mean, std = mean_std(features)
            stages.append(StageSignals(mean, std, weight(features).float(), bias(features).float()))
        return StyleSignals((stages[0], stages[1]))

    def content_features(self, content: Tensor) -> Tensor:
        """The content encoder's second map ``[B,64,H/4,W/4]`` (its first is not used by the decoder);
        ``content`` must already have a valid size (see :func:`.padding.pad_to_valid`)."""
        return self.content_encoder(content)[1]

    def stage(self, index: int, normalized: Tensor, signals: StageSignals) -> Tensor:
        """Decoder stage ``index`` (0 or 1): AdaIN, i.e. ``normalized`` features given the painting's
        mean and std, then the residual block modulated by the painting's weight and bias."""
        block = self.decoder.dec1 if index == 0 else self.decoder.dec2
        x = normalized * signals.std.to(normalized.dtype) + signals.mean.to(normalized.dtype)
        return block(x, signals.weight.to(x.dtype), signals.bias.to(x.dtype))

    def head(self, x: Tensor) -> Tensor:
        """The x4 upsampling head: the last stage's output -> RGB (about 0..1, not clamped)."""
        return self.decoder.dec3(x)

    def decode(self, features: Tensor, signals: StyleSignals) -> Tensor:
        """The authors' decoder: each stage normalises by the image's own statistics."""
        x = features
        for index, stage in enumerate(signals.stages):
            x = self.stage(index, instance_normalize(x), stage)
        return self.head(x)

    def forward(self, content: Tensor, style: Tensor) -> Tensor:
        """Stylise 0..1 RGB ``content`` with ``style`` (a painting per image, or one for all): the
        authors' output, padded to a valid size inside and cropped back, not clamped."""
        height, width = content.shape[-2:]
        features = self.content_features(pad_to_valid(content))
        return self.decode(features, self.style_signals(style))[..., :height, :width]
