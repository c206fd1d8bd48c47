"""What the settings of every training run share: the checks of the common fields, the JSON round trip
stored with a checkpoint, and the list of differences that forbid resuming a saved run."""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any, TypeVar

from ...depthstyle_core.depth import PATCH
from ...depthstyle_core.losses import DEPTH_LOSSES, WEIGHT_MODES

PRECISIONS = ("auto", "fp32", "bf16")
Settings = TypeVar("Settings", bound="RunSettings")
# Settings that may change between a run and its resumption: they do not change the result.
RESUMABLE_CHANGES = frozenset(
    {"iterations", "checkpoint_every", "log_every", "preview_every", "loader_threads"}
)


class RunSettings:
    """Mixin of the frozen dataclasses that configure a training run (``TrainConfig``,
    ``AnyTrainConfig``). The dataclass has at least the fields checked in :meth:`check_run_settings`."""

    def check_run_settings(self) -> None:
        """Raise ``ValueError`` naming the first common setting that is out of range."""
        for name in ("iterations", "batch_size", "image_size", "checkpoint_every", "log_every"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.image_size < 16:
            raise ValueError(f"image_size must be at least 16 pixels, got {self.image_size}")
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

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values (nested settings as dicts)."""
        return asdict(self)

    @classmethod
    def from_dict(cls: type[Settings], values: dict[str, Any]) -> Settings:
        """The inverse of :meth:`to_dict`; unknown keys are ignored."""
        known = {f.name for f in fields(cls)}
        return cls(**cls._nested({k: v for k, v in values.items() if k in known}))

    @classmethod
    def _nested(cls, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Rebuild nested settings objects from their dicts (none here)."""
        return kwargs

    def differences(self: Settings, other: Settings) -> list[str]:
        """``"name: mine -> other's"`` for each setting that would change the result of a resumed run."""
        mine, theirs = self.to_dict(), other.to_dict()
        return [
            f"{name}: {mine[name]!r} -> {theirs[name]!r}"
            for name in mine
            if name not in RESUMABLE_CHANGES and mine[name] != theirs[name]
        ]
