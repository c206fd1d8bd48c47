"""Settings of a feed-forward style training run. The defaults are the paper's (Liu et al. 2017, §4.1).

Adam with lr 1e-3, batch 4, 256 px crops, 40 000 iterations, loss weights content 1 / style 5 /
depth 5. The weights are "normalized" (each term divided by its magnitude on the first batch, see
:mod:`depthstyle_core.losses`), so the paper's numbers keep their meaning with PyTorch's VGG-16.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ..depthstyle_core.depth import PATCH
from ..depthstyle_core.losses import DEPTH_LOSSES, WEIGHT_MODES, LossWeights
from ..depthstyle_core.models.transformer_net import TransformerNetConfig

PRECISIONS = ("auto", "fp32", "bf16")
# Settings that may change between a run and its resumption: they do not change the result.
RESUMABLE_CHANGES = frozenset(
    {"iterations", "checkpoint_every", "log_every", "preview_every", "loader_threads"}
)


@dataclass(frozen=True)
class TrainConfig:
    """How to train one style. Invalid values raise ``ValueError`` when the config is made.

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
        positive = ("iterations", "batch_size", "image_size", "checkpoint_every", "log_every")
        for name in positive:
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.image_size < 16:
            raise ValueError(f"image_size must be at least 16 pixels, got {self.image_size}")
        if self.style_size is not None and self.style_size < 16:
            raise ValueError(f"style_size must be at least 16 pixels or None, got {self.style_size}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.preview_every < 0 or (self.loader_threads is not None and self.loader_threads < 0):
            raise ValueError("preview_every and loader_threads must be >= 0")
        if self.weight_mode not in WEIGHT_MODES:
            raise ValueError(f"weight_mode must be one of {WEIGHT_MODES}, got {self.weight_mode!r}")
        if self.depth_loss not in DEPTH_LOSSES:
            raise ValueError(f"depth_loss must be one of {DEPTH_LOSSES}, got {self.depth_loss!r}")
        if self.depth_resolution < PATCH or self.depth_resolution % PATCH:
            raise ValueError(f"depth_resolution must be a multiple of {PATCH}, got {self.depth_resolution}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
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

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values (the network config as a dict)."""
        values = asdict(self)
        values["net_config"] = asdict(self.net_config)
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """The inverse of :meth:`to_dict`; unknown keys are ignored."""
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in values.items() if k in known}
        if isinstance(kwargs.get("net_config"), dict):
            kwargs["net_config"] = TransformerNetConfig(**kwargs["net_config"])
        return cls(**kwargs)

    def differences(self, other: TrainConfig) -> list[str]:
        """``"name: mine -> other's"`` for each setting that would change the result of a resumed run."""
        mine, theirs = self.to_dict(), other.to_dict()
        return [
            f"{name}: {mine[name]!r} -> {theirs[name]!r}"
            for name in mine
            if name not in RESUMABLE_CHANGES and mine[name] != theirs[name]
        ]
