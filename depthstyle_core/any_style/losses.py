"""Loss terms of training the any-painting network (MicroAST's recipe), as pure functions of tensors.

- :func:`mean_std_loss`: the style loss of AdaIN-family networks, the squared differences of the
  per-channel mean and standard deviation of two feature maps, image by image (each result against
  its own painting).
- :func:`signal_contrastive_loss`: the recipe's style-signal contrastive loss. The style encoder reads
  each result back; its signals (:class:`~..models.microast.StyleSignals`: the AdaIN targets and the
  modulation of both decoder stages) should be near those of the result's own painting and far from
  those of the other paintings of the step.

Everything is reduced in fp32, also under autocast.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

from ..models.microast import StyleSignals, mean_std

CONTRAST_EPS = 1e-12  # keeps a step whose paintings are all the same picture finite


def mean_std_loss(features: Tensor, target: Tensor) -> Tensor:
    """Mean squared difference of the per-image, per-channel means plus that of the standard
    deviations of ``[B,C,H,W]`` maps (the authors' statistics: unbiased variance + 1e-5)."""
    mean, std = mean_std(features)
    target_mean, target_std = mean_std(target)
    return F.mse_loss(mean, target_mean) + F.mse_loss(std, target_std)


def layered_mean_std_loss(features: Mapping[str, Tensor], targets: Mapping[str, Tensor]) -> Tensor:
    """Sum over the target layers of :func:`mean_std_loss`."""
    if not targets:
        raise ValueError("the style loss needs at least one layer")
    return sum(mean_std_loss(features[layer], target) for layer, target in targets.items())


def signal_rows(signals: StyleSignals) -> Tensor:
    """Each image's signals as one fp32 row ``[B, 512]`` (mean, std, weight, bias of both stages)."""
    return torch.cat(
        [
            getattr(stage, name).float().flatten(1)
            for stage in signals.stages
            for name in ("mean", "std", "weight", "bias")
        ],
        dim=1,
    )


def signal_contrastive_loss(results: Tensor, paintings: Tensor, first: int = 0) -> Tensor:
    """The style-signal contrastive loss of ``B`` results (rows of :func:`signal_rows`) against the
    ``N`` paintings of the whole step (``N >= 2``); result ``i`` was painted with painting
    ``first + i`` (``first`` > 0 for a process that holds a later slice of the step).

    For each result: its mean squared distance to its own painting's signals, divided by the mean of
    its distances to the other paintings' signals; the loss is the mean over the results. A ratio,
    so it has no unit; the mean over the negatives (the recipe sums them) keeps its size independent of
    the batch, so a step split over several processes has the loss of the whole step.
    """
    count = paintings.shape[0]
    if count < 2:
        raise ValueError(
            "the style-signal contrastive loss compares each result with the other paintings of its step, "
            f"so it needs at least 2 paintings per step; got {count}"
        )
    distances = (results.float()[:, None, :] - paintings.float()[None, :, :]).pow(2).mean(dim=2)
    own = F.one_hot(torch.arange(results.shape[0], device=results.device) + first, count).bool()
    positive = distances.masked_select(own)
    negative = distances.masked_fill(own, 0.0).sum(dim=1) / (count - 1)
    return (positive / negative.clamp_min(CONTRAST_EPS)).mean()
