"""Where a training run keeps its files, all beside the style model, and atomic file writes."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

MODEL_SUFFIX = ".safetensors"
STATE_SUFFIX = ".state.safetensors"


@dataclass(frozen=True)
class TrainPaths:
    """The files of one run, named after the style model ``<name>.safetensors``.

    ``<name>.state.safetensors`` holds what resuming needs (weights, optimiser, step, settings);
    ``<name>.log.json`` / ``.log.csv`` the loss log; ``<name>.loss.png`` the loss curve;
    ``<name>.preview.png`` the latest preview.
    """

    model: Path
    state: Path
    log_json: Path
    log_csv: Path
    loss_curve: Path
    preview: Path

    @classmethod
    def for_model(cls, out_path: str | os.PathLike) -> TrainPaths:
        """Paths for a style model written to ``out_path`` (``.safetensors`` is added if missing)."""
        model = Path(out_path)
        if model.name.endswith(STATE_SUFFIX):
            raise ValueError(f"{model} is a training-state file name; give the style model's file name")
        if model.suffix != MODEL_SUFFIX:
            model = model.with_name(model.name + MODEL_SUFFIX)
        stem = model.name[: -len(MODEL_SUFFIX)]

        def sibling(suffix: str) -> Path:
            return model.with_name(stem + suffix)

        return cls(
            model=model,
            state=sibling(STATE_SUFFIX),
            log_json=sibling(".log.json"),
            log_csv=sibling(".log.csv"),
            loss_curve=sibling(".loss.png"),
            preview=sibling(".preview.png"),
        )
