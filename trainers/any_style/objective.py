"""The objective of the any-painting network: content, style, style-signal contrast and depth.

Choices, and why:

- **Content at VGG-16 relu4_1**, the mean squared difference of the result's and the photo's
  features. The recipe of the built-in weights uses VGG-19 relu4_1; VGG-16's relu4_1 sits at the
  same place (the first layer of the fourth block, after three poolings), so a fine-tune from the
  built-in weights keeps optimising the balance they were trained for. A lower layer (relu2_2, as our
  per-style trainer) would also pin fine texture and fight the style term, and the depth loss now
  keeps the layout that a lower content layer would otherwise protect. It costs nothing extra: the
  style loss already runs VGG up to relu4_1.
- **Style as mean/std matching** at relu1_1, relu2_1, relu3_1, relu4_1, each result against its own
  painting (the recipe's loss, with the authors' statistics).
- **Style-signal contrast** (:func:`~...depthstyle_core.any_style.losses.signal_contrastive_loss`)
  over all the paintings of the step, gathered from every process, so that N processes x batch B
  train what one process x batch N*B trains. It needs 2 or more paintings per step.
- **Depth**: Depth Anything on the result against the photo, scale-and-shift invariant, as in the
  per-style trainer.

Normalisation: the user's weights are shares ("normalized" mode, :class:`~...depthstyle_core.losses.
LossBalancer`). Each term is divided by its magnitude on the first batch **as painted by the built-in
network**, whatever the run starts from, so a weight means "this term's share of the objective for
a trained network" and runs from the built-in weights, from a file or from scratch weigh their terms
alike (a random network's first losses are nothing like a trained one's). The magnitudes are frozen
and saved for resuming.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import Tensor

from ...depthstyle_core.any_style.losses import layered_mean_std_loss, signal_contrastive_loss, signal_rows
from ...depthstyle_core.losses import LossBalancer, content_loss
from ...depthstyle_core.models.depth_anything import DepthAnythingV2
from ...depthstyle_core.models.vgg import VGG16Features
from ..run.loss_networks import depth_term
from .config import AnyLossWeights
from .painting_pass import PassOutput

CONTENT_LAYER = "relu4_1"
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")

RowGather = Callable[[Tensor], tuple[Tensor, int]]
"""This process's signal rows -> the rows of the whole step and the index of this process's first row."""


def _alone(rows: Tensor) -> tuple[Tensor, int]:
    return rows, 0


class PaintingObjective:
    """Loss terms of a :class:`PassOutput` against its photos and paintings, combined by a
    :class:`LossBalancer`."""

    def __init__(
        self,
        vgg: VGG16Features,
        weights: AnyLossWeights,
        *,
        depth_model: DepthAnythingV2 | None = None,
        depth_loss_mode: str = "ssi",
        depth_resolution: int = 252,
        magnitudes: Mapping[str, float] | None = None,
        gather: RowGather = _alone,
    ) -> None:
        if weights.depth > 0 and depth_model is None:
            raise ValueError("the depth weight is > 0 but no depth model was given")
        self.vgg = vgg
        self.weights = weights
        self.wanted = weights.terms()
        self.depth_model = depth_model if weights.depth > 0 else None
        self.depth_loss_mode = depth_loss_mode
        self.depth_resolution = depth_resolution
        self.gather = gather
        self.balancer = LossBalancer(weights, magnitudes)

    @property
    def needs_calibration(self) -> bool:
        """True until normalized weights have their magnitudes."""
        return self.balancer.needs_calibration

    @property
    def reads_back(self) -> bool:
        """Whether the pass must read the results back through the style encoder."""
        return "contrastive" in self.wanted

    def terms(self, out: PassOutput, photos: Tensor, paintings: Tensor) -> dict[str, Tensor]:
        """The unweighted loss terms that have a weight > 0."""
        terms: dict[str, Tensor] = {}
        if "content" in self.wanted or "style" in self.wanted:
            terms.update(self._perceptual(out.results, photos, paintings))
        if "contrastive" in self.wanted:
            everyone, first = self.gather(signal_rows(out.painting_signals))
            terms["contrastive"] = signal_contrastive_loss(signal_rows(out.result_signals), everyone, first)
        if self.depth_model is not None:
            terms["depth"] = depth_term(
                self.depth_model, out.results, photos, self.depth_resolution, self.depth_loss_mode
            )
        return terms

    def _perceptual(self, results: Tensor, photos: Tensor, paintings: Tensor) -> dict[str, Tensor]:
        """Content and style: one VGG pass of the results, one without gradients of the targets."""
        style = "style" in self.wanted
        content = "content" in self.wanted
        taps = STYLE_LAYERS if style else (CONTENT_LAYER,)
        features = self.vgg(results, taps=taps)
        targets = [photos] * content + [paintings] * style
        with torch.no_grad():
            target_features = self.vgg(torch.cat(targets), taps=taps)
        photo_part, painting_part = slice(0, len(photos)), slice(len(photos) * content, None)
        terms = {}
        if content:
            terms["content"] = content_loss(
                features[CONTENT_LAYER], target_features[CONTENT_LAYER][photo_part]
            )
        if style:
            painting_features = {layer: target_features[layer][painting_part] for layer in STYLE_LAYERS}
            terms["style"] = layered_mean_std_loss(features, painting_features)
        return terms

    def calibrate(
        self,
        reference: PassOutput,
        photos: Tensor,
        paintings: Tensor,
        combine: Callable[[dict[str, Tensor]], Mapping[str, Tensor]] | None = None,
    ) -> dict[str, float]:
        """Freeze the normalisation magnitudes from the ``reference`` network's pass on this batch;
        ``combine`` averages the terms over the processes."""
        with torch.no_grad():
            terms = self.terms(reference, photos, paintings)
            return self.balancer.calibrate(combine(terms) if combine is not None else terms)

    def __call__(
        self, out: PassOutput, photos: Tensor, paintings: Tensor
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """The objective to minimise and its weighted terms (detached)."""
        return self.balancer.combine(self.terms(out, photos, paintings))
