"""The objective of a per-image style optimisation at one scale, with scale-free weights.

Why the weights need a reference, and why it is a noise image. Each raw loss term has its own unit
(squared VGG activations, squared Gram entries, squared normalised depth, squared pixel steps) and its
size depends on the image, the style and the network, so raw weights mean nothing from one picture to
the next. The trainer divides each term by its value on the first training batch; here that cannot
work, because the optimisation starts from the content image, where the content loss is exactly 0.

Instead every term is divided by its value for a fixed image of uniform noise, computed once per scale
and per image (the same seeded noise every time): the content and depth terms of noise against this
photo, the style term of noise against this style (each style layer on its own), the total variation
of noise. That reference is never 0 for a real photo or style, does not depend on where the
optimisation starts or how far it has got, and is a picture that has neither the photo's content and
depth nor the style: a weight says how much the optimisation should care about moving away from noise
in that respect. So with content 1 / style 5 / depth 5 a noise image's content, style and depth losses
weigh 1 : 5 : 5, whatever the networks, the photo, the style or the size; the style weight is shared
equally among the style layers. A term whose reference is 0 (a style layer whose activations are all
zero for both the noise and the style) carries no information and is left out.

Gram matrices and every reduction run in fp32, also under bf16 autocast.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ...depthstyle_core.depth import PATCH, depth_for_loss, processing_size
from ...depthstyle_core.losses import gram_matrix, normalize_depth_ssi
from ...depthstyle_core.models.depth_anything import DepthAnythingV2
from ...depthstyle_core.models.vgg import VGG16Features
from .config import OptimizeConfig

TERMS = ("content", "style", "depth", "tv")
NOISE_STREAM = 7919  # mixed into the seed so that the reference noise differs from a noise start


def resize(images: Tensor, size: tuple[int, int]) -> Tensor:
    """Bicubic resize of 0..1 images (antialiased when shrinking), clamped back to 0..1."""
    if tuple(images.shape[-2:]) == tuple(size):
        return images
    shrinking = size[0] < images.shape[-2] or size[1] < images.shape[-1]
    out = F.interpolate(images, size=size, mode="bicubic", align_corners=False, antialias=shrinking)
    return out.clamp(0, 1)


def style_size(style: Tensor, working: tuple[int, int], style_scale: float) -> tuple[int, int]:
    """The size of a style image whose long side is ``style_scale`` times the working long side."""
    height, width = style.shape[-2:]
    factor = style_scale * max(working) / max(height, width)
    return max(16, round(height * factor)), max(16, round(width * factor))


def depth_resolution(working: tuple[int, int], limit: int) -> int:
    """The depth network's shorter side: ``limit``, but never more than the working shorter side."""
    return max(PATCH, min(limit, min(working) // PATCH * PATCH))


def _per_image_mse(a: Tensor, b: Tensor) -> Tensor:
    """Mean squared difference per image ``[B]``; one fused kernel each way for a single image."""
    a, b = a.float(), b.float()
    if a.shape[0] == 1:
        return F.mse_loss(a, b.expand_as(a)).reshape(1)
    return F.mse_loss(a, b.expand_as(a), reduction="none").flatten(1).mean(dim=1)


def total_variation_per_image(images: Tensor) -> Tensor:
    """Mean squared difference of neighbouring pixels, per image ``[B]``."""
    x = images.float()
    return _per_image_mse(x[..., :, 1:], x[..., :, :-1]) + _per_image_mse(x[..., 1:, :], x[..., :-1, :])


@dataclass
class _Targets:
    content: Tensor | None  # VGG features of the content at the content layer, [B,C,h,w]
    grams: dict[str, Tensor]  # blended style Gram matrix per style layer, [1,C,C]
    depth: Tensor | None  # the content's depth map, [B,1,h,w], normalised once for the "ssi" loss


class ScaleObjective:
    """The loss terms of images at one scale, each divided by its value for reference noise.

    Everything that does not change during the scale (the content's features and depth, the styles'
    Gram matrices, the reference magnitudes) is computed once, here, without gradients.
    """

    def __init__(
        self,
        content: Tensor,
        styles: Sequence[Tensor],
        config: OptimizeConfig,
        vgg: VGG16Features,
        depth_model: DepthAnythingV2 | None,
        scale_index: int,
        depth_map: Tensor | None = None,
    ) -> None:
        self.config = config
        self.vgg = vgg
        self.depth_model = depth_model if config.depth_weight > 0 else None
        working = tuple(content.shape[-2:])
        self.depth_resolution = depth_resolution(working, config.depth_resolution)
        with torch.no_grad():
            self.targets = _Targets(
                content=self._content_features(content),
                grams=self._blended_grams(styles, working),
                depth=self._depth_target(content, depth_map) if self.depth_model is not None else None,
            )
            generator = torch.Generator().manual_seed(config.seed * 1000 + NOISE_STREAM + scale_index)
            noise = torch.rand(content.shape, generator=generator).to(content.device, content.dtype)
            self.scales = self._reference_scales(self.raw_terms(noise))

    def _content_features(self, content: Tensor) -> Tensor | None:
        if self.config.content_weight == 0:
            return None
        return self.vgg(content, taps=(self.config.content_layer,))[self.config.content_layer].float()

    def _blended_grams(self, styles: Sequence[Tensor], working: tuple[int, int]) -> dict[str, Tensor]:
        if self.config.style_weight == 0:
            return {}
        blended: dict[str, Tensor] = {}
        for style, weight in zip(styles, self.config.blend_weights(len(styles)), strict=True):
            if weight == 0:
                continue
            sized = resize(style, style_size(style, working, self.config.style_scale))
            features = self.vgg(sized, taps=self.config.style_layers)
            for layer in self.config.style_layers:
                gram = gram_matrix(features[layer]) * weight
                blended[layer] = gram if layer not in blended else blended[layer] + gram
        return blended

    def _depth_target(self, content: Tensor, depth_map: Tensor | None) -> Tensor:
        """What the result's depth must match: the content's depth through the depth network, or a
        depth map given for it (near = 1), resized to the network's output size. A map is compared
        scale-and-shift-free ("ssi"), as it has its own scale."""
        if depth_map is None:
            return self._depth(content)
        size = processing_size(content.shape[-2], content.shape[-1], self.depth_resolution)
        resized = F.interpolate(
            depth_map.float(), size=size, mode="bilinear", align_corners=False, antialias=True
        )
        return normalize_depth_ssi(resized)

    def _depth(self, images: Tensor) -> Tensor:
        """The depth map as the depth loss compares it: normalised per image for "ssi", raw for "l2"."""
        depth = depth_for_loss(self.depth_model, images, self.depth_resolution).float()
        return normalize_depth_ssi(depth) if self.config.depth_loss == "ssi" else depth

    def raw_terms(self, images: Tensor) -> dict[str, Tensor]:
        """Unweighted terms per image: ``[B]`` each, style ``[B, layers]``."""
        config = self.config
        terms: dict[str, Tensor] = {}
        taps = [*self.targets.grams, *([config.content_layer] if self.targets.content is not None else [])]
        features = self.vgg(images, taps=dict.fromkeys(taps)) if taps else {}
        if self.targets.content is not None:
            terms["content"] = _per_image_mse(features[config.content_layer], self.targets.content)
        if self.targets.grams:
            per_layer = [
                _per_image_mse(gram_matrix(features[layer]), target)
                for layer, target in self.targets.grams.items()
            ]
            terms["style"] = torch.stack(per_layer, dim=1)
        if self.targets.depth is not None:
            terms["depth"] = _per_image_mse(self._depth(images), self.targets.depth)
        if config.tv_weight > 0:
            terms["tv"] = total_variation_per_image(images)
        return terms

    def _reference_scales(self, noise_terms: dict[str, Tensor]) -> dict[str, Tensor]:
        """``weight / reference`` per term and image (per style layer too); 0 where the reference is 0."""
        weights = {
            "content": self.config.content_weight,
            "style": self.config.style_weight / max(1, len(self.targets.grams)),
            "depth": self.config.depth_weight,
            "tv": self.config.tv_weight,
        }
        scales = {}
        for name, reference in noise_terms.items():
            usable = torch.isfinite(reference) & (reference > 0)
            scales[name] = torch.where(usable, weights[name] / reference.clamp_min(1e-30), 0.0)
        return scales

    def __call__(self, images: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """The objective (a scalar: the sum over images of their weighted terms) and each weighted term
        summed over the images (detached, for logging)."""
        terms = self.raw_terms(images)
        weighted = {name: (value * self.scales[name]).sum() for name, value in terms.items()}
        total = torch.stack(list(weighted.values())).sum()
        return total, {name: value.detach() for name, value in weighted.items()}
