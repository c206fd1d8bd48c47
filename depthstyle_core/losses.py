"""Loss terms for training a style network, and how they are weighted.

The terms are pure functions of tensors. Gram matrices and reductions run in fp32 even under
autocast: a Gram matrix sums H*W products, which overflows fp16 and loses most digits in bf16.

Weighting: the paper's weights (content 1, style 5, depth 5) were tuned for Caffe VGG on 0..255 inputs
and mean nothing with another loss network. In ``"normalized"`` mode each term is divided by its
magnitude on a calibration batch (measured once at the start of training, then frozen), so a weight is
the term's share of the objective at the start: 1 / 5 / 5 keep their meaning whatever the networks.
``"raw"`` mode multiplies the terms by the weights as they are (pytorch/examples: 1e5 / 1e10).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from .errors import SettingsError, TrainingError

CONTENT_LAYER = "relu2_2"
STYLE_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")
DEPTH_LOSSES = ("ssi", "l2")
WEIGHT_MODES = ("normalized", "raw")
TERMS = ("content", "style", "depth", "tv")
SSI_EPS = 1e-6


def _fp32(x: Tensor) -> Tensor:
    return x.float()


def gram_matrix(features: Tensor) -> Tensor:
    """Gram matrices ``[B,C,C]`` of ``[B,C,H,W]`` features, divided by C*H*W, in fp32."""
    batch, channels, height, width = features.shape
    with torch.autocast(device_type=features.device.type, enabled=False):
        flat = _fp32(features).reshape(batch, channels, height * width)
        return torch.bmm(flat, flat.transpose(1, 2)) / (channels * height * width)


def style_targets(
    features: Mapping[str, Tensor], layers: tuple[str, ...] = STYLE_LAYERS
) -> dict[str, Tensor]:
    """The style image's Gram matrices (detached), one ``[1 or B, C, C]`` per layer."""
    return {layer: gram_matrix(features[layer]).detach() for layer in layers}


def content_loss(features: Tensor, target: Tensor) -> Tensor:
    """Mean squared difference of two feature maps (the content layer of stylised vs content image)."""
    return F.mse_loss(_fp32(features), _fp32(target))


def style_loss(features: Mapping[str, Tensor], targets: Mapping[str, Tensor]) -> Tensor:
    """Sum over the target layers of the mean squared difference of Gram matrices.

    A target of batch 1 (one style image) is compared with every image of the batch.
    """
    total = None
    for layer, target in targets.items():
        gram = gram_matrix(features[layer])
        term = F.mse_loss(gram, _fp32(target).expand_as(gram))
        total = term if total is None else total + term
    if total is None:
        raise ValueError("style_loss needs at least one target layer")
    return total


def total_variation(images: Tensor) -> Tensor:
    """Mean squared difference between horizontally and vertically neighbouring pixels."""
    x = _fp32(images)
    dx = x[..., :, 1:] - x[..., :, :-1]
    dy = x[..., 1:, :] - x[..., :-1, :]
    return dx.pow(2).mean() + dy.pow(2).mean()


def normalize_depth_ssi(depth: Tensor) -> Tensor:
    """Per image: subtract the median, divide by the mean absolute deviation from it (MiDaS).

    The result does not change when the depth map is multiplied by a positive number or shifted,
    but it does change when it is inverted, so near and far cannot swap unnoticed.
    """
    flat = _fp32(depth).flatten(1)
    median = flat.median(dim=1, keepdim=True).values
    centred = flat - median
    scale = centred.abs().mean(dim=1, keepdim=True).clamp_min(SSI_EPS)
    return (centred / scale).view_as(depth)


def depth_loss(pred: Tensor, target: Tensor, mode: str = "ssi") -> Tensor:
    """Depth difference between the stylised image's depth map ``pred`` and the content's ``target``.

    ``"ssi"`` (default): scale-and-shift invariant, both maps normalised per image by
    :func:`normalize_depth_ssi`; Depth Anything's relative depth has no fixed scale or shift.
    ``"l2"``: the paper's plain mean squared difference of the raw maps.
    """
    if pred.shape != target.shape:
        raise ValueError(f"depth maps differ in shape: {tuple(pred.shape)} vs {tuple(target.shape)}")
    if mode == "ssi":
        return F.mse_loss(normalize_depth_ssi(pred), normalize_depth_ssi(target))
    if mode == "l2":
        return F.mse_loss(_fp32(pred), _fp32(target))
    raise ValueError(f"depth loss must be one of {DEPTH_LOSSES}, got {mode!r}")


def check_weights(mode: str, weights: Mapping[str, float]) -> None:
    """Raise :class:`SettingsError` unless ``mode`` is a weight mode and every weight is a finite number
    >= 0 (shared by every objective's weights)."""
    if mode not in WEIGHT_MODES:
        raise SettingsError(f"weight mode must be one of {WEIGHT_MODES}, got {mode!r}")
    for name, value in weights.items():
        if not (math.isfinite(value) and value >= 0):
            raise SettingsError(f"the {name} weight must be a finite number >= 0, got {value}")


@dataclass(frozen=True)
class LossWeights:
    """User-facing weights of the loss terms; see the module docstring for the two modes."""

    content: float = 1.0
    style: float = 5.0
    depth: float = 5.0
    tv: float = 1e-6
    mode: str = "normalized"

    def __post_init__(self) -> None:
        check_weights(self.mode, {name: getattr(self, name) for name in TERMS})

    @classmethod
    def raw(
        cls, content: float = 1e5, style: float = 1e10, depth: float = 1e5, tv: float = 0.0
    ) -> LossWeights:
        """Unnormalised weights; the defaults for content and style are pytorch/examples'. The depth
        default is only a starting point of the same order as the content term: tune it per style."""
        return cls(content=content, style=style, depth=depth, tv=tv, mode="raw")

    def terms(self) -> dict[str, float]:
        """The weights of the terms that count (weight > 0)."""
        return {name: value for name, value in asdict(self).items() if name in TERMS and value > 0}


class WeightSet(Protocol):
    """What a :class:`LossBalancer` needs of its weights (:class:`LossWeights` or another trainer's):
    the mode and the weights of the terms that count."""

    mode: str

    def terms(self) -> dict[str, float]: ...


class LossBalancer:
    """Turns the loss terms into one objective.

    Normalized mode: call :meth:`calibrate` once with the terms of the first batch (no gradient needed);
    from then on each term is multiplied by ``weight / magnitude``, so on that batch every weighted term
    equals its weight. Save :attr:`magnitudes` with a checkpoint and pass them back on resume.
    """

    def __init__(self, weights: WeightSet, magnitudes: Mapping[str, float] | None = None) -> None:
        self.weights = weights
        self._magnitudes: dict[str, float] | None = None
        if magnitudes is not None:
            self._magnitudes = self._checked(magnitudes)

    @property
    def needs_calibration(self) -> bool:
        """True until normalized mode has its magnitudes (never in raw mode)."""
        return self.weights.mode == "normalized" and self._magnitudes is None

    @property
    def magnitudes(self) -> dict[str, float] | None:
        """The frozen calibration magnitudes per term (None before calibration or in raw mode)."""
        return None if self._magnitudes is None else dict(self._magnitudes)

    def calibrate(self, terms: Mapping[str, Tensor | float]) -> dict[str, float]:
        """Record each weighted term's magnitude on the calibration batch; only once."""
        if self.weights.mode != "normalized":
            raise RuntimeError("calibration is only used with normalized weights")
        if self._magnitudes is not None:
            raise RuntimeError("the loss weights are already calibrated; calibration is frozen")
        self._magnitudes = self._checked({name: float(terms[name]) for name in self._required(terms)})
        return dict(self._magnitudes)

    def scales(self) -> dict[str, float]:
        """The factor each term is multiplied by."""
        weights = self.weights.terms()
        if self.weights.mode == "raw":
            return weights
        if self._magnitudes is None:
            raise RuntimeError("normalized loss weights need calibrate() before the first step")
        return {name: weight / self._magnitudes[name] for name, weight in weights.items()}

    def combine(self, terms: Mapping[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        """The total objective and the weighted terms (detached, for logging)."""
        scales = self.scales()
        self._required(terms)
        weighted = {name: terms[name] * scale for name, scale in scales.items()}
        total = sum(weighted.values(), torch.zeros((), device=_device_of(terms)))
        return total, {name: value.detach() for name, value in weighted.items()}

    def _required(self, terms: Mapping[str, Tensor | float]) -> list[str]:
        names = list(self.weights.terms())
        missing = [name for name in names if name not in terms]
        if missing:
            raise ValueError(f"loss terms {missing} have a weight > 0 but were not computed")
        return names

    def _checked(self, magnitudes: Mapping[str, float]) -> dict[str, float]:
        checked = {}
        for name in self.weights.terms():
            if name not in magnitudes:
                raise ValueError(f"no calibration magnitude for the {name} loss")
            value = float(magnitudes[name])
            if not math.isfinite(value) or value <= 0:
                raise TrainingError(
                    f"cannot calibrate the {name} loss: it is {value} on the calibration batch. "
                    f"Set its weight to 0, or use raw weights."
                )
            checked[name] = value
        return checked


def _device_of(terms: Mapping[str, Tensor]) -> torch.device:
    for value in terms.values():
        if isinstance(value, Tensor):
            return value.device
    return torch.device("cpu")
