"""Resuming a run: process 0 reads the saved state and loss log, checks that they fit this run, and
hands them to every process (on several machines only process 0 is sure to see its own files).

A run may be resumed with another number of processes as long as the global batch (processes x
batch per process) stays the same: every process takes its slice of the same global stream of
crops, so 2 processes x batch 2 continue exactly what 4 x 1 or 1 x 4 started.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ..depthstyle_core.errors import DepthStyleError, TrainingError
from .config import TrainConfig
from .distributed import Team
from .loss_log import LossLog
from .paths import TrainPaths
from .state import TrainState, load_train_state

_MUST_MATCH = (
    ("style_sha256", "the style image"),
    ("content_fingerprint", "the content images"),
    ("depth_model", "the depth model"),
)


def _processes(count: int) -> str:
    return f"{count} process{'es' if count != 1 else ''}"


def resume_problems(saved_info: dict[str, Any], config: TrainConfig, info: dict[str, Any]) -> list[str]:
    """What differs between a saved run (its ``info``) and this one in a way that would change the
    result; ``info["world_size"]`` is the number of processes (1 when the saved run did not say)."""
    saved = TrainConfig.from_dict(saved_info.get("config", {}))
    saved_world, world = int(saved_info.get("world_size", 1)), int(info.get("world_size", 1))
    if saved_world == world:
        problems = saved.differences(config)
    else:
        problems = saved.differences(replace(config, batch_size=saved.batch_size))
        saved_global, new_global = saved.batch_size * saved_world, config.batch_size * world
        if saved_global != new_global:
            problems.append(
                f"the global batch changed: the run was trained by {_processes(saved_world)} x batch "
                f"{saved.batch_size} = {saved_global} crops per step, this one is {_processes(world)} x "
                f"batch {config.batch_size} = {new_global} (resume with {_processes(saved_world)} and "
                f"--batch-size {saved.batch_size}, or any split of {saved_global} crops per step)"
            )
    for key, what in _MUST_MATCH:
        if saved_info.get(key) != info[key]:
            problems.append(f"{what} changed ({saved_info.get(key)!s:.24} -> {info[key]!s:.24})")
    return problems


def _read(paths: TrainPaths, config: TrainConfig, info: dict[str, Any]) -> tuple[TrainState | None, list]:
    if not paths.state.is_file():
        return None, []
    state = load_train_state(paths.state)
    problems = resume_problems(state.info, config, info)
    if problems:
        raise TrainingError(
            f"cannot resume from {paths.state}: "
            + "; ".join(problems)
            + ". Resume with the same settings and images, or train without resume to start over."
        )
    log = LossLog.load(paths.log_json)
    log.truncate(state.step)
    return state, log.records


def load_resumable(
    paths: TrainPaths, config: TrainConfig, info: dict[str, Any], team: Team
) -> tuple[TrainState | None, list[dict[str, float]]]:
    """The saved state (None if there is none) and the loss-log records up to its step, on every
    process. Raises :class:`TrainingError` on every process if the saved run cannot be continued."""
    found: tuple[TrainState | None, list] = (None, [])
    failure: DepthStyleError | None = None
    if team.is_main:
        try:
            found = _read(paths, config, info)
        except DepthStyleError as exc:
            failure = exc
    found, message = team.from_main((found, None if failure is None else str(failure)))
    if failure is not None:
        raise failure
    if message is not None:
        raise TrainingError(message)
    return found
