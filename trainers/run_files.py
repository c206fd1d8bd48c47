"""The files of a checkpoint: resume state, style model, loss log (JSON and CSV) and loss curve.

Each file is written atomically; the state goes first, so a crash in between leaves a style model
that is at most one checkpoint older than the state it would be resumed from.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

import torch

from ..depthstyle_core.models.transformer_net import TransformerNet
from ..depthstyle_core.style_model import save_style_model
from .config import TrainConfig
from .loss_curve import write_loss_curve
from .loss_log import LossLog
from .paths import TrainPaths
from .state import TrainState, save_train_state

UNREADABLE_LISTED = 20


def write_checkpoint_files(
    paths: TrainPaths,
    step: int,
    net: TransformerNet,
    optimizer: torch.optim.Optimizer,
    config: TrainConfig,
    info: dict[str, Any],
    log: LossLog,
    unreadable: Collection[str],
) -> None:
    """Write every file of the checkpoint after ``step``. ``info`` describes the run (settings,
    fingerprints, calibration); ``unreadable``: content files that could not be decoded, whose
    count and first :data:`UNREADABLE_LISTED` names go into the log."""
    save_train_state(paths.state, TrainState(step, net.state_dict(), optimizer.state_dict(), info))
    save_style_model(
        paths.model,
        net,
        extra_metadata={
            "train.step": str(step),
            "train.iterations": str(config.iterations),
            "train.complete": "true" if step >= config.iterations else "false",
            "train.config": json.dumps(config.to_dict(), sort_keys=True),
            "train.style_sha256": info["style_sha256"],
            "train.depth_model": info["depth_model"],
            "train.content": info["content"],
            "train.world_size": str(info.get("world_size", 1)),
            "train.loss": json.dumps(log.records[-1] if log.records else {}),
        },
    )
    described = {k: v for k, v in info.items() if k != "content_fingerprint"}
    described["unreadable_files"] = {
        "count": len(unreadable),
        "first": sorted(unreadable)[:UNREADABLE_LISTED],
    }
    log.write_json(paths.log_json, described)
    log.write_csv(paths.log_csv)
    write_loss_curve(log.records, paths.loss_curve)
