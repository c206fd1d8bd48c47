"""Settings of a run that trains the any-painting network (MicroAST) depth-aware.

The defaults follow the recipe of the published weights (``reference/arbitrary_style.md``) where it
applies: batch 8, 256 px crops of images resized to 512 px, Adam at lr 1e-4 decayed as
``lr / (1 + 5e-5 * step)``, loss weights content 1 / style 3 / contrastive 3, plus the depth loss at 5.
They are a fine-tune: 20 000 steps from the built-in weights (``init="builtin"``); the authors
trained 160 000 steps from scratch.

The weights are "normalized" shares (see :mod:`.objective` for what they are measured against),
so the recipe's numbers keep their meaning with our VGG-16 and the depth loss.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ...depthstyle_core.errors import SettingsError
from ...depthstyle_core.losses import check_weights
from ..run.settings import RunSettings

BUILTIN = "builtin"
RANDOM = "random"
ANY_TERMS = ("content", "style", "contrastive", "depth")


@dataclass(frozen=True)
class AnyLossWeights:
    """The weights of the any-painting objective's terms (a :class:`~...depthstyle_core.losses.WeightSet`)."""

    content: float = 1.0
    style: float = 3.0
    contrastive: float = 3.0
    depth: float = 5.0
    mode: str = "normalized"

    def __post_init__(self) -> None:
        check_weights(self.mode, {name: getattr(self, name) for name in ANY_TERMS})
        if not self.terms():
            raise SettingsError("every loss weight is 0: nothing to train")

    def terms(self) -> dict[str, float]:
        """The weights of the terms that count (weight > 0)."""
        return {name: value for name, value in asdict(self).items() if name in ANY_TERMS and value > 0}


@dataclass(frozen=True)
class AnyTrainConfig(RunSettings):
    """How to train the any-painting network. Invalid values raise ``SettingsError`` (a ``ValueError``)
    when made.

    ``init``: the starting weights, ``"builtin"`` (the shipped network: a fine-tune), ``"random"``
    (from scratch, seeded by ``seed``) or the path of an any-painting model file. ``load_size``: photos
    and paintings are resized to this shorter side (aspect kept) before the ``image_size`` crop.
    ``lr_decay``: the learning rate of step ``k`` (0-based) is ``lr / (1 + lr_decay * k)``.
    ``depth_resolution``: the shorter side the depth network sees, a multiple of 14. ``precision``:
    "auto" is bf16 autocast on CUDA (where supported) and fp32 elsewhere. ``loader_threads``:
    background image-loading threads (None: 4 on CUDA, 1 on the CPU). ``checkpoint_every`` /
    ``log_every`` / ``preview_every``: in steps; 0 turns previews off.
    """

    iterations: int = 20_000
    batch_size: int = 8
    image_size: int = 256
    load_size: int = 512
    lr: float = 1e-4
    lr_decay: float = 5e-5
    seed: int = 0
    init: str = BUILTIN
    content_weight: float = 1.0
    style_weight: float = 3.0
    contrastive_weight: float = 3.0
    depth_weight: float = 5.0
    weight_mode: str = "normalized"
    depth_loss: str = "ssi"
    depth_resolution: int = 252
    checkpoint_every: int = 1000
    log_every: int = 50
    preview_every: int = 500
    loader_threads: int | None = None
    precision: str = "auto"

    def __post_init__(self) -> None:
        self.check_run_settings()
        if self.load_size < self.image_size:
            raise SettingsError(
                f"load_size ({self.load_size}) must be at least image_size ({self.image_size}): the crops "
                "are cut from images resized to load_size"
            )
        if not self.lr_decay >= 0:
            raise SettingsError(f"lr_decay must be >= 0, got {self.lr_decay}")
        if not str(self.init).strip():
            raise SettingsError(f"init must be {BUILTIN!r}, {RANDOM!r} or a model file, got {self.init!r}")
        self.loss_weights()  # validates the weights

    def loss_weights(self) -> AnyLossWeights:
        """The loss weights as :class:`AnyLossWeights`."""
        return AnyLossWeights(
            content=self.content_weight,
            style=self.style_weight,
            contrastive=self.contrastive_weight,
            depth=self.depth_weight,
            mode=self.weight_mode,
        )

    def lr_at(self, step: int) -> float:
        """The learning rate of step ``step`` (0-based), the recipe's inverse decay."""
        return self.lr / (1.0 + self.lr_decay * step)
