"""Resuming a run: process 0 reads the saved state and loss log, checks that they fit this run, and
hands them to every process (on several machines only process 0 is sure to see its own files).

A run may be resumed with another number of processes as long as the global batch (processes x
batch per process) stays the same: every process takes its slice of the same global stream of
crops, so 2 processes x batch 2 continue exactly what 4 x 1 or 1 x 4 started.

A saved run of another network (a style network's state where an any-painting run is resumed, or
the other way round) is refused before anything else is compared.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from ...depthstyle_core.errors import DepthStyleError, TrainingError
from ..distributed import Team
from .loss_log import LossLog
from .paths import TrainPaths
from .settings import RunSettings
from .state import TrainState, load_train_state

# The network a run trains, as its info records it; runs saved before the key existed trained a style network.
ARCHITECTURE_KEY = "architecture"
DEFAULT_ARCHITECTURE = "TransformerNet"
_TRAINED_BY = {
    "TransformerNet": "a style network (depthstyle train)",
    "MicroAST": "the any-painting network (depthstyle train-any)",
}

MustMatch = Sequence[tuple[str, str]]
"""``(info key, what it is)`` of each input that a resumed run must share with the saved one."""


def _processes(count: int) -> str:
    return f"{count} process{'es' if count != 1 else ''}"


def _trained(architecture: str) -> str:
    return _TRAINED_BY.get(architecture, f"a {architecture} network")


def resume_problems(
    saved_info: dict[str, Any], config: RunSettings, info: dict[str, Any], must_match: MustMatch
) -> list[str]:
    """What differs between a saved run (its ``info``) and this one in a way that would change the
    result; ``info["world_size"]`` is the number of processes (1 when the saved run did not say)."""
    saved_architecture = saved_info.get(ARCHITECTURE_KEY, DEFAULT_ARCHITECTURE)
    architecture = info.get(ARCHITECTURE_KEY, DEFAULT_ARCHITECTURE)
    if saved_architecture != architecture:
        return [
            f"it holds a run that trains {_trained(saved_architecture)}, and this run trains "
            f"{_trained(architecture)} (give another output name, or resume it with the command that "
            "started it)"
        ]
    saved = type(config).from_dict(saved_info.get("config", {}))
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
    for key, what in must_match:
        if saved_info.get(key) != info[key]:
            problems.append(f"{what} changed ({saved_info.get(key)!s:.24} -> {info[key]!s:.24})")
    return problems


def _read(
    paths: TrainPaths, config: RunSettings, info: dict[str, Any], must_match: MustMatch
) -> tuple[TrainState | None, list]:
    if not paths.state.is_file():
        return None, []
    state = load_train_state(paths.state)
    problems = resume_problems(state.info, config, info, must_match)
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
    paths: TrainPaths, config: RunSettings, info: dict[str, Any], team: Team, must_match: MustMatch
) -> tuple[TrainState | None, list[dict[str, float]]]:
    """The saved state (None if there is none) and the loss-log records up to its step, on every
    process. Raises :class:`TrainingError` on every process if the saved run cannot be continued:
    another network, other settings (``config`` against the saved one), another global batch, or
    changed inputs (``must_match``)."""
    found: tuple[TrainState | None, list] = (None, [])
    failure: DepthStyleError | None = None
    if team.is_main:
        try:
            found = _read(paths, config, info, must_match)
        except DepthStyleError as exc:
            failure = exc
    found, message = team.from_main((found, None if failure is None else str(failure)))
    if failure is not None:
        raise failure
    if message is not None:
        raise TrainingError(message)
    return found
