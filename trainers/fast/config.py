"""Settings of a feed-forward style training run. The defaults are the paper's (Liu et al. 2017, §4.1).

Adam with lr 1e-3, batch 4, 256 px crops, 40 000 iterations, loss weights content 1 / style 5 /
depth 5. The weights are "normalized" (each term divided by its magnitude on the first batch, see
:mod:`depthstyle_core.losses`), so the paper's numbers keep their meaning with PyTorch's VGG-16.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ...depthstyle_core.errors import SettingsError
from ...depthstyle_core.losses import LossWeights
from ...depthstyle_core.models.transformer_net import TransformerNetConfig
from ..run.settings import RunSettings


@dataclass(frozen=True)
class TrainConfig(RunSettings):
    """How to train one style. Invalid values raise ``SettingsError`` (a ``ValueError``) when the
    config is made.

    ``style_size``: the style image is resized so its longer side has this many pixels (None: as
    given). ``depth_resolution``: the shorter side the depth network sees, a multiple of 14.
    ``precision``: "auto" is bf16 autocast on CUDA (where supported) and fp32 elsewhere.
    ``loader_threads``: background image-loading threads (None: 4 on CUDA, 1 on the CPU).
    ``checkpoint_every`` / ``log_every`` / ``preview_every``: in steps; 0 turns previews off.
    """

    iterations: int = 40_000
    batch_size: int = 4
    image_size: int = 256
    style_size: int | None = 512
    lr: float = 1e-3
    seed: int = 0
    content_weight: float = 1.0
    style_weight: float = 5.0
    depth_weight: float = 5.0
    tv_weight: float = LossWeights.tv
    weight_mode: str = "normalized"
    depth_loss: str = "ssi"
    depth_resolution: int = 252
    checkpoint_every: int = 1000
    log_every: int = 50
    preview_every: int = 500
    loader_threads: int | None = None
    precision: str = "auto"
    net_config: TransformerNetConfig = field(default_factory=TransformerNetConfig)

    def __post_init__(self) -> None:
        self.check_run_settings()
        if self.style_size is not None and self.style_size < 16:
            raise SettingsError(f"style_size must be at least 16 pixels or None, got {self.style_size}")
        self.loss_weights()  # validates the weights

    def loss_weights(self) -> LossWeights:
        """The loss weights as :class:`LossWeights`."""
        return LossWeights(
            content=self.content_weight,
            style=self.style_weight,
            depth=self.depth_weight,
            tv=self.tv_weight,
            mode=self.weight_mode,
        )

    @classmethod
    def _nested(cls, kwargs: dict[str, Any]) -> dict[str, Any]:
        if isinstance(kwargs.get("net_config"), dict):
            kwargs["net_config"] = TransformerNetConfig(**kwargs["net_config"])
        return kwargs
