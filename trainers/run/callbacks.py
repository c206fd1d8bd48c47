"""The hooks a host (ComfyUI node, CLI) passes to a training run, bundled with null-safe calls.

Hosts reach training only through these plain callables, never through imports:

- ``on_progress(step, total, preview)``: after every step; ``preview`` is a ``[1,3,H,W]`` 0..1 CPU
  image on preview steps, otherwise None.
- ``on_preview(step, preview)``: on preview steps only.
- ``on_log(record)``: every ``log_every`` steps with a :class:`~.loss_log.LossLog` record.
- ``should_stop()``: asked before every step; True ends the run cleanly after a checkpoint. It may
  also raise (ComfyUI's interrupt does): the run then checkpoints and re-raises.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

ProgressCallback = Callable[[int, int, "torch.Tensor | None"], None]
PreviewCallback = Callable[[int, torch.Tensor], None]
LogCallback = Callable[[dict[str, float]], None]
StopCallback = Callable[[], bool]


@dataclass(frozen=True)
class TrainCallbacks:
    """The optional hooks of one run; each method does nothing when its hook is None."""

    on_progress: ProgressCallback | None = None
    on_preview: PreviewCallback | None = None
    on_log: LogCallback | None = None
    should_stop: StopCallback | None = None

    def stop_requested(self) -> bool:
        """Whether the host asked to stop (exceptions from the host propagate)."""
        return bool(self.should_stop()) if self.should_stop is not None else False

    def progress(self, step: int, total: int, preview: torch.Tensor | None) -> None:
        """Report a finished step, with the preview image on preview steps."""
        if preview is not None and self.on_preview is not None:
            self.on_preview(step, preview)
        if self.on_progress is not None:
            self.on_progress(step, total, preview)

    def log(self, record: dict[str, float]) -> None:
        """Hand a loss-log record to the host."""
        if self.on_log is not None:
            self.on_log(dict(record))
