"""Settings of a per-image style optimisation (Gatys et al. 2016 with the depth loss of Liu et al. 2017).

The defaults are chosen to give a finished picture at 512 px in a few minutes on a CPU and seconds on
a GPU, and each has a reason:

- Coarse to fine: the long side grows by ``scale_step`` (√2) from ``min_size`` (128 px) to ``size``, as
  in crowsonkb's style-transfer-pytorch. The layout of strokes and colours settles at the small, cheap
  scales; the larger ones only add detail, so they start from the upsampled result and need fewer steps.
  The coarsest scale runs ``first_scale_steps`` (default twice ``steps``): it moves furthest from the
  photo and costs a sixteenth of the last scale at 512 px.
- Adam on the pixels in 0..1 with learning rate 0.02 (pixels are clamped to 0..1 after every step), and
  the result is an exponential average of the iterates (``average_decay`` 0.95, about the last 20 steps),
  which removes the pixel noise Adam's steps leave without slowing convergence.
- Gatys's layers: content at relu4_2, style at relu1_1, relu2_1, relu3_1, relu4_1 and relu5_1.
- Weights are scale-free (see :mod:`.objective`): content 1 / style 5 / depth 5 are the paper's.
  ``tv_weight`` 1 smooths as strongly as the content term resists a pixel-noise pattern; 0 turns it off.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ...depthstyle_core.depth import PATCH
from ...depthstyle_core.errors import SettingsError
from ...depthstyle_core.losses import DEPTH_LOSSES
from ...depthstyle_core.models.vgg import TAPS

INITS = ("content", "noise", "blend")
PRECISIONS = ("auto", "fp32", "bf16")
GATYS_STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
GATYS_CONTENT_LAYER = "relu4_2"


@dataclass(frozen=True)
class OptimizeConfig:
    """How to optimise one image (or a batch) towards a style. Invalid values raise ``SettingsError``
    (a ``ValueError``).

    ``size``: long side of the result in pixels; 0 keeps the input's size. ``steps``: Adam steps at each
    scale after the first; ``first_scale_steps``: at the coarsest scale (None: ``2 * steps``).
    ``style_scale``: the style image is resized so its long side is this times the working long side.
    ``style_weights``: blend of several style images (None: equal); normalised to sum 1.
    ``init``: start from the content, from uniform noise, or from their average ("blend").
    ``depth_resolution``: the shorter side the depth network sees (a multiple of 14), never more than
    the working image's own. ``precision``: "auto" is bf16 autocast for the networks on CUDA, fp32 on
    the CPU; "bf16" also works on a CPU with native bf16 (AVX512-BF16/AMX), about 1.4x faster there.
    ``preview_every``: steps between preview images (0: only at the end of each scale).
    ``strength`` and ``preserve_color`` act as in ``stylize``.
    """

    size: int = 512
    steps: int = 100
    first_scale_steps: int | None = None
    min_size: int = 128
    scale_step: float = math.sqrt(2.0)
    content_weight: float = 1.0
    style_weight: float = 5.0
    depth_weight: float = 5.0
    tv_weight: float = 1.0
    content_layer: str = GATYS_CONTENT_LAYER
    style_layers: tuple[str, ...] = GATYS_STYLE_LAYERS
    style_scale: float = 1.0
    style_weights: tuple[float, ...] | None = None
    depth_loss: str = "ssi"
    depth_resolution: int = 252
    init: str = "content"
    seed: int = 0
    lr: float = 0.02
    average_decay: float = 0.95
    strength: float = 1.0
    preserve_color: bool = False
    precision: str = "auto"
    preview_every: int = 25

    def __post_init__(self) -> None:
        _at_least(self, "size", 0)
        _at_least(self, "steps", 1)
        _at_least(self, "min_size", 16)
        _at_least(self, "preview_every", 0)
        if self.first_scale_steps is not None:
            _at_least(self, "first_scale_steps", 1)
        if not 1.05 <= self.scale_step <= 4.0:
            raise SettingsError(f"scale_step must be between 1.05 and 4, got {self.scale_step}")
        for name in ("content_weight", "style_weight", "depth_weight", "tv_weight"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise SettingsError(f"{name} must be a finite number >= 0, got {value}")
        if not self.content_weight + self.style_weight + self.depth_weight + self.tv_weight > 0:
            raise SettingsError("at least one of the content, style, depth and tv weights must be > 0")
        unknown = [layer for layer in (self.content_layer, *self.style_layers) if layer not in TAPS]
        if unknown or not self.style_layers:
            raise SettingsError(
                f"VGG layers must be among {tuple(TAPS)} (at least one style layer), got {unknown}"
            )
        if self.style_weights is not None:
            weights = tuple(float(w) for w in self.style_weights)
            if not weights or any(not (math.isfinite(w) and w >= 0) for w in weights) or sum(weights) <= 0:
                raise SettingsError(
                    f"style_weights must be finite numbers >= 0 with a positive sum, got {self.style_weights}"
                )
            object.__setattr__(self, "style_weights", weights)
        if not (math.isfinite(self.style_scale) and 0.05 <= self.style_scale <= 8):
            raise SettingsError(f"style_scale must be between 0.05 and 8, got {self.style_scale}")
        if self.depth_loss not in DEPTH_LOSSES:
            raise SettingsError(f"depth_loss must be one of {DEPTH_LOSSES}, got {self.depth_loss!r}")
        if self.depth_resolution < PATCH or self.depth_resolution % PATCH:
            raise SettingsError(
                f"depth_resolution must be a multiple of {PATCH}, got {self.depth_resolution}"
            )
        if self.init not in INITS:
            raise SettingsError(f"init must be one of {INITS}, got {self.init!r}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise SettingsError(f"lr must be > 0, got {self.lr}")
        if not 0 <= self.average_decay < 1:
            raise SettingsError(f"average_decay must be in [0, 1), got {self.average_decay}")
        if not 0 <= self.strength <= 1:
            raise SettingsError(f"strength must be between 0 and 1, got {self.strength}")
        if self.precision not in PRECISIONS:
            raise SettingsError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")

    @property
    def coarsest_steps(self) -> int:
        """Steps at the first (coarsest) scale."""
        return self.first_scale_steps if self.first_scale_steps is not None else 2 * self.steps

    def blend_weights(self, count: int) -> tuple[float, ...]:
        """The weight of each of ``count`` style images, summing to 1."""
        weights = self.style_weights if self.style_weights is not None else (1.0,) * count
        if len(weights) != count:
            raise SettingsError(f"{len(weights)} style weights were given for {count} style images")
        total = sum(weights)
        return tuple(w / total for w in weights)


def _at_least(config: OptimizeConfig, name: str, minimum: int) -> None:
    value = getattr(config, name)
    if int(value) != value or value < minimum:
        raise SettingsError(f"{name} must be a whole number >= {minimum}, got {value}")
