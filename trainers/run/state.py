"""The resume file ``<name>.state.safetensors``: everything needed to continue a run at its exact step.

It holds the network weights, the Adam state and the step, plus the run's settings and loss
calibration as JSON metadata. Weights are stored here as well as in the style model so that one
atomic write always leaves a consistent pair of weights and optimiser state. The data order and
crops are derived from the seed and the step (see :mod:`..data`), and training draws no other random
numbers, so no generator state needs saving.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ...depthstyle_core.checkpoint import read_safetensors, write_safetensors_atomic
from ...depthstyle_core.errors import CheckpointError

STATE_FORMAT = "depthstyle-train-state/1"
_NET = "net."
_OPT = "optimizer."


@dataclass
class TrainState:
    """A training run frozen after ``step`` completed optimiser steps."""

    step: int
    net: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    info: dict[str, Any]


def _cpu(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.detach().to("cpu").contiguous().clone()


def save_train_state(path: str | os.PathLike, state: TrainState) -> Path:
    """Write ``state`` atomically. ``state.optimizer`` is a ``torch.optim`` ``state_dict()``."""
    tensors = {_NET + name: _cpu(value) for name, value in state.net.items()}
    scalars: dict[str, dict[str, Any]] = {}
    for param_id, entries in state.optimizer["state"].items():
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{_OPT}{param_id}.{key}"] = _cpu(value)
            else:
                scalars.setdefault(str(param_id), {})[key] = value
    metadata = {
        "depthstyle_format": STATE_FORMAT,
        "step": str(int(state.step)),
        "info": json.dumps(state.info, sort_keys=True),
        "optimizer_param_groups": json.dumps(state.optimizer["param_groups"]),
        "optimizer_scalars": json.dumps(scalars),
    }
    return write_safetensors_atomic(path, tensors, metadata)


def load_train_state(path: str | os.PathLike) -> TrainState:
    """Read a file written by :func:`save_train_state`; anything else raises :class:`CheckpointError`."""
    tensors, metadata = read_safetensors(path)
    if metadata.get("depthstyle_format") != STATE_FORMAT:
        raise CheckpointError(
            f"{path} is not a DepthStyle training-state file (format {metadata.get('depthstyle_format')!r}, "
            f"expected {STATE_FORMAT!r}). Delete it or train without resume."
        )
    try:
        step = int(metadata["step"])
        info = json.loads(metadata["info"])
        param_groups = json.loads(metadata["optimizer_param_groups"])
        scalars = json.loads(metadata["optimizer_scalars"])
    except (KeyError, ValueError) as exc:
        raise CheckpointError(f"{path}: damaged training-state metadata ({exc}). Delete the file.") from exc
    net = {name[len(_NET) :]: value for name, value in tensors.items() if name.startswith(_NET)}
    per_param: dict[int, dict[str, Any]] = {int(k): dict(v) for k, v in scalars.items()}
    for name, value in tensors.items():
        if name.startswith(_OPT):
            param_id, key = name[len(_OPT) :].split(".", 1)
            per_param.setdefault(int(param_id), {})[key] = value
    optimizer = {"state": per_param, "param_groups": param_groups}
    return TrainState(step=step, net=net, optimizer=optimizer, info=info)
