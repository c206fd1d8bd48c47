"""The training objective of a feed-forward style network: content, style, depth and TV terms.

Everything that does not change during training is computed once: the style image's Gram matrices
at construction, the calibration magnitudes on the first batch. Per batch the content image's VGG
features and depth map are computed without gradients; only the stylised image's pass is recorded.
A depth weight of 0 skips the depth network entirely.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

from ...depthstyle_core.images import to_rgb
from ...depthstyle_core.losses import (
    CONTENT_LAYER,
    STYLE_LAYERS,
    LossBalancer,
    LossWeights,
    content_loss,
    style_loss,
    style_targets,
    total_variation,
)
from ...depthstyle_core.models.depth_anything import DepthAnythingV2
from ...depthstyle_core.models.vgg import VGG16Features
from ..run.loss_networks import depth_term


def prepare_style_image(image: Tensor, style_size: int | None) -> Tensor:
    """``[1,C,H,W]`` 0..1 -> ``[1,3,h,w]`` float32 whose longer side is ``style_size`` (None: unchanged)."""
    if image.ndim == 3:
        image = image.unsqueeze(0)
    rgb = to_rgb(image[:1]).float()
    if style_size is None:
        return rgb.contiguous()
    height, width = rgb.shape[-2:]
    scale = style_size / max(height, width)
    size = (max(1, round(height * scale)), max(1, round(width * scale)))
    return F.interpolate(rgb, size=size, mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)


class StyleObjective:
    """Loss terms of a stylised batch against its content batch, combined by a :class:`LossBalancer`."""

    def __init__(
        self,
        vgg: VGG16Features,
        style_image: Tensor,
        weights: LossWeights,
        *,
        depth_model: DepthAnythingV2 | None = None,
        depth_loss_mode: str = "ssi",
        depth_resolution: int = 252,
        magnitudes: Mapping[str, float] | None = None,
    ) -> None:
        if weights.depth > 0 and depth_model is None:
            raise ValueError("the depth weight is > 0 but no depth model was given")
        self.vgg = vgg
        self.weights = weights
        self.depth_model = depth_model if weights.depth > 0 else None
        self.depth_loss_mode = depth_loss_mode
        self.depth_resolution = depth_resolution
        self.balancer = LossBalancer(weights, magnitudes)
        with torch.no_grad():
            self.style_grams = style_targets(vgg(style_image, taps=STYLE_LAYERS)) if weights.style > 0 else {}

    @property
    def needs_calibration(self) -> bool:
        """True until normalized weights have their magnitudes."""
        return self.balancer.needs_calibration

    def terms(self, stylised: Tensor, content: Tensor) -> dict[str, Tensor]:
        """The unweighted loss terms that have a weight > 0."""
        wanted = self.weights.terms()
        taps = tuple(STYLE_LAYERS if "style" in wanted else ()) + (
            (CONTENT_LAYER,) if "content" in wanted else ()
        )
        out: dict[str, Tensor] = {}
        if taps:
            features = self.vgg(stylised, taps=taps)
            if "style" in wanted:
                out["style"] = style_loss(features, self.style_grams)
            if "content" in wanted:
                with torch.no_grad():
                    target = self.vgg(content, taps=(CONTENT_LAYER,))[CONTENT_LAYER]
                out["content"] = content_loss(features[CONTENT_LAYER], target)
        if self.depth_model is not None:
            out["depth"] = depth_term(
                self.depth_model, stylised, content, self.depth_resolution, self.depth_loss_mode
            )
        if "tv" in wanted:
            out["tv"] = total_variation(stylised)
        return out

    def calibrate(
        self,
        stylised: Tensor,
        content: Tensor,
        combine: Callable[[dict[str, Tensor]], Mapping[str, Tensor]] | None = None,
    ) -> dict[str, float]:
        """Freeze the normalisation magnitudes from this batch (normalized weights only).

        ``combine`` turns this batch's terms into those of the whole global batch when several
        processes each hold a slice of it (it averages them over the processes).
        """
        with torch.no_grad():
            terms = self.terms(stylised, content)
            return self.balancer.calibrate(combine(terms) if combine is not None else terms)

    def __call__(self, stylised: Tensor, content: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """The objective to minimise and its weighted terms (detached)."""
        return self.balancer.combine(self.terms(stylised, content))
