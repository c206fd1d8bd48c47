"""The files of a checkpoint: resume state, trained model, loss log (JSON and CSV) and loss curve.

Each file is written atomically; the state goes first, so a crash in between leaves a model that is
at most one checkpoint older than the state it would be resumed from.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .loss_curve import write_loss_curve
from .loss_log import LossLog
from .paths import TrainPaths
from .settings import RunSettings
from .state import TrainState, save_train_state

UNREADABLE_LISTED = 20

ModelWriter = Callable[[Path, dict[str, str]], object]
"""Writes the trained network to a path with the given extra metadata (e.g. ``save_style_model``)."""


def run_metadata(step: int, config: RunSettings, info: Mapping[str, Any], log: LossLog) -> dict[str, str]:
    """What every trained model file says about its run: the step, whether it is complete, the
    settings, the depth model, the number of processes and the last logged losses."""
    return {
        "train.step": str(step),
        "train.iterations": str(config.iterations),
        "train.complete": "true" if step >= config.iterations else "false",
        "train.config": json.dumps(config.to_dict(), sort_keys=True),
        "train.depth_model": info["depth_model"],
        "train.world_size": str(info.get("world_size", 1)),
        "train.loss": json.dumps(log.records[-1] if log.records else {}),
    }


def write_checkpoint_files(
    paths: TrainPaths,
    step: int,
    net: nn.Module,
    optimizer: torch.optim.Optimizer,
    config: RunSettings,
    info: dict[str, Any],
    log: LossLog,
    unreadable: Collection[str],
    save_model: ModelWriter,
    model_metadata: Mapping[str, str],
) -> None:
    """Write every file of the checkpoint after ``step``. ``info`` describes the run (settings,
    fingerprints, calibration); ``save_model`` writes ``net`` with :func:`run_metadata` and
    ``model_metadata``; ``unreadable``: training files that could not be decoded, whose count and
    first :data:`UNREADABLE_LISTED` names go into the log."""
    save_train_state(paths.state, TrainState(step, net.state_dict(), optimizer.state_dict(), info))
    save_model(paths.model, {**run_metadata(step, config, info, log), **model_metadata})
    described = {k: v for k, v in info.items() if not k.endswith("fingerprint")}
    described["unreadable_files"] = {
        "count": len(unreadable),
        "first": sorted(unreadable)[:UNREADABLE_LISTED],
    }
    log.write_json(paths.log_json, described)
    log.write_csv(paths.log_csv)
    write_loss_curve(log.records, paths.loss_curve)
