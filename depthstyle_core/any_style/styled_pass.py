"""The any-painting network with a painting's signals bound, in the form the tiler drives.

MicroAST's only whole-image quantities are the content statistics at its two AdaIN points, so it tiles
and pools video frames exactly as TransformerNet does with its instance norms (:mod:`..tiling`): the
statistics of the whole image (or of the whole clip) are gathered first and every tile is normalised
with them. :class:`StyledPass` offers that interface: ``norm_layers``, ``norm_stats``, ``norm_input`` and
a forward that takes fixed or batch-pooled statistics.

Partial strength (see :mod:`.strength`) blends the signals from the photo's own (``own``) to the
painting's by an amount, one number or a map that rides along as a fourth input channel (so a tile
carries its own part; the network uses it at 1/4 resolution, averaged over each 4x4 block). The first
AdaIN point sees only the content, so its statistics do not depend on the amount. The second sees
features made with the blended signals; it is normalised with the statistics of the two pure cases
(all own signals, all the painting's), blended by the same amount per pixel. So where the amount is 1
the features are normalised exactly as in the painting's own pass, wherever else the image is held
back, and a uniform amount equals a map of that amount everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

from ..models.microast import EPS, MicroASTParts, StyleSignals
from ..models.padding import STRIDE, pad_to_valid

Stats = dict[str, tuple[Tensor, Tensor]]
"""Per statistics point: (mean, unbiased variance), ``[B,64,1,1]`` fp32 (``[1,64,1,1]`` pooled over the
batch)."""

CONTENT_POINT = "adain1"
STYLED_POINT = "adain2"
OWN_POINT = "adain2_own"
PAINTING_POINT = "adain2_painting"


class _ReachedPoint(Exception):
    """Ends a pass early at a statistics point (see StyledPass.norm_input and norm_stats)."""

    def __init__(self, activation: Tensor) -> None:
        super().__init__()
        self.activation = activation


class _Statistics:
    """Where a pass takes its statistics from: ``fixed`` ones, or its own (per image or ``pooled`` over
    the batch, recorded); it can stop at the input of one point or right after recording the last."""

    def __init__(
        self,
        fixed: Mapping[str, tuple[Tensor, Tensor]] | None = None,
        pooled: bool = False,
        stop_at: str | None = None,
        stop_after: str | None = None,
    ) -> None:
        self.fixed = fixed
        self.pooled = pooled
        self.stop_at = stop_at
        self.stop_after = stop_after
        self.recorded: Stats = {}

    def has(self, point: str) -> bool:
        return self.fixed is not None and point in self.fixed

    def __call__(self, point: str, x: Tensor) -> tuple[Tensor, Tensor]:
        """(mean, var) at ``point`` for the features ``x``."""
        if point == self.stop_at:
            raise _ReachedPoint(x)
        if self.fixed is not None:
            try:
                mean, var = self.fixed[point]
            except KeyError:
                raise ValueError(f"the statistics have nothing for {point!r}") from None
        else:
            dims = (0, 2, 3) if self.pooled else (2, 3)
            var, mean = torch.var_mean(x.float(), dim=dims, keepdim=True, correction=1)
            self.recorded[point] = (mean, var)
        if point == self.stop_after:
            raise _ReachedPoint(x)
        return mean, var


def _normalized(x: Tensor, mean: Tensor, var: Tensor) -> Tensor:
    return ((x.float() - mean) / (var + EPS).sqrt()).to(x.dtype)


class StyledPass:
    """``[B,3,H,W]`` 0..1 photos (any size) -> RGB, not clamped, painted with ``signals``.

    With ``own`` (the photos' own signals) the signals move from ``own`` to ``signals`` by ``amount``, or,
    when ``amount`` is None, by a per-pixel map carried as the input's fourth channel. Signals with batch
    1 apply to any batch.
    """

    variance_correction = 1  # the authors' AdaIN uses the unbiased variance

    def __init__(
        self,
        model: MicroASTParts,
        signals: StyleSignals,
        own: StyleSignals | None = None,
        amount: float | None = None,
    ) -> None:
        if own is None and amount is not None:
            raise ValueError("an amount needs the photos' own signals to blend from")
        self.model = model
        self.signals = signals
        self.own = own
        self.amount = amount

    def norm_layers(self) -> list[str]:
        """The statistics points, in the order each depends on the ones before."""
        if self.own is None:
            return [CONTENT_POINT, STYLED_POINT]
        return [CONTENT_POINT, OWN_POINT, PAINTING_POINT]

    def __call__(self, x: Tensor, stats: Stats | None = None, *, pool_batch: bool = False) -> Tensor:
        """The network's output for ``x``, normalised with ``stats``, with statistics pooled over the
        batch (``pool_batch``), or with each image's own."""
        if pool_batch and stats is not None:
            raise ValueError("pass either stats or pool_batch=True, not both")
        return self._run(x, _Statistics(fixed=stats, pooled=pool_batch))

    def norm_stats(self, x: Tensor, pooled: bool = False) -> Stats:
        """Every point's statistics for ``x``: per image, or ``pooled`` over the batch."""
        statistics = _Statistics(pooled=pooled, stop_after=self.norm_layers()[-1])
        try:
            self._run(x, statistics)
        except _ReachedPoint:
            return statistics.recorded
        raise AssertionError("the forward pass never reached the last statistics point")

    def norm_input(self, x: Tensor, layer: str, stats: Stats | None = None) -> Tensor:
        """The features at point ``layer`` for ``x`` (padded, not cropped), earlier points normalised
        with ``stats``: lets the tiler build whole-image statistics from tiles, one point at a time."""
        if layer not in self.norm_layers():
            raise ValueError(f"{layer!r} is not a statistics point here ({', '.join(self.norm_layers())})")
        try:
            self._run(x, _Statistics(fixed=stats or {}, stop_at=layer))
        except _ReachedPoint as reached:
            return reached.activation
        raise AssertionError(f"the forward pass never reached {layer!r}")

    def _amount(self, padded: Tensor) -> float | Tensor:
        channels = 4 if self.own is not None and self.amount is None else 3
        if padded.ndim != 4 or padded.shape[1] != channels:
            what = "photos [B,3,H,W]" if channels == 3 else "photos with a strength channel [B,4,H,W]"
            raise ValueError(f"expected {what}, got shape {tuple(padded.shape)}")
        if channels == 3:
            return 1.0 if self.amount is None else self.amount
        return F.avg_pool2d(padded[:, 3:].float(), STRIDE)

    def _run(self, x: Tensor, statistics: _Statistics) -> Tensor:
        height, width = x.shape[-2:]
        padded = pad_to_valid(x)
        amount = self._amount(padded)
        model = self.model
        features = model.content_features(padded[:, :3])
        normalized = _normalized(features, *statistics(CONTENT_POINT, features))
        if self.own is None:
            styled = model.stage(0, normalized, self.signals.stages[0])
            second = _normalized(styled, *statistics(STYLED_POINT, styled))
            return model.head(model.stage(1, second, self.signals.stages[1]))[..., :height, :width]
        pure = {}
        for point, signals in ((OWN_POINT, self.own), (PAINTING_POINT, self.signals)):
            if statistics.has(point):
                pure[point] = statistics.fixed[point]  # type: ignore[index]
            else:
                pure[point] = statistics(point, model.stage(0, normalized, signals.stages[0]))
        blend = self.own.lerp(self.signals, amount)
        styled = model.stage(0, normalized, blend.stages[0])
        (own_mean, own_var), (paint_mean, paint_var) = pure[OWN_POINT], pure[PAINTING_POINT]
        second = _normalized(
            styled, torch.lerp(own_mean, paint_mean, amount), torch.lerp(own_var, paint_var, amount)
        )
        return model.head(model.stage(1, second, blend.stages[1]))[..., :height, :width]
