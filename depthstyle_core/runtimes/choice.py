"""Which runtime runs a network: the setting, the device and what is installed decide, once."""

from __future__ import annotations

import functools
import importlib

import torch

from ..errors import SettingsError

AUTO, TORCH, OPENVINO = "auto", "torch", "openvino"
RUNTIMES = (AUTO, TORCH, OPENVINO)
OLDEST_OPENVINO = (2025, 0)  # the first with the operation sets at openvino.opsetN
INSTALL = 'pip install "depthstyle[cpu]" (or pip install openvino)'


@functools.cache
def openvino_problem() -> str | None:
    """Why OpenVINO cannot run our graphs here, or None when it can."""
    try:
        openvino = importlib.import_module("openvino")
    except ImportError as exc:
        return f"the openvino package is not installed ({exc}): {INSTALL}"
    version = getattr(openvino, "__version__", "")
    found = tuple(int(part) for part in version.split("-")[0].split(".")[:2] if part.isdigit())
    if len(found) == 2 and found < OLDEST_OPENVINO:
        oldest = ".".join(map(str, OLDEST_OPENVINO))
        return f"openvino {version} is too old (need {oldest} or newer): pip install -U openvino"
    try:
        importlib.import_module("openvino.opset13")
    except ImportError as exc:
        return f"openvino {version} lacks the operation sets used here ({exc}): pip install -U openvino"
    return None


def chosen_runtime(runtime: str, device: torch.device | str) -> str:
    """``torch`` or ``openvino`` for a network on ``device``: ``auto`` takes OpenVINO on the CPU when it
    is installed; asking for OpenVINO on another device, or without it installed, is an error."""
    if runtime not in RUNTIMES:
        raise SettingsError(f"runtime must be one of {RUNTIMES}, got {runtime!r}")
    on_cpu = torch.device(device).type == "cpu"
    if runtime == OPENVINO:
        if not on_cpu:
            raise SettingsError(
                f"the openvino runtime runs on the CPU only, not on {device}: run on the CPU, or choose "
                "the runtime auto (torch on the GPU)"
            )
        problem = openvino_problem()
        if problem is not None:
            raise SettingsError(f"the openvino runtime cannot run: {problem}")
        return OPENVINO
    if runtime == AUTO and on_cpu and openvino_problem() is None:
        return OPENVINO
    return TORCH
