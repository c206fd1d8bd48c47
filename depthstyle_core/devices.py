"""Which torch device to run on: for ``auto`` the machine's accelerator, else the CPU; a device named by
the user is checked against what this machine has before anything runs on it."""

from __future__ import annotations

import torch

from .errors import DeviceError

AUTO = "auto"


def best_device() -> torch.device:
    """CUDA (or ROCm), else Apple MPS, else Intel XPU, else the CPU.

    ``torch.accelerator`` (torch 2.6+) names the accelerator torch was built for; older torch is asked
    backend by backend.
    """
    accelerator = getattr(torch, "accelerator", None)
    if accelerator is not None and accelerator.is_available():
        found = accelerator.current_accelerator()
        if found is not None:
            return torch.device(found.type)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    xpu = getattr(torch, "xpu", None)
    if xpu is not None and xpu.is_available():
        return torch.device("xpu")
    return torch.device("cpu")


def resolve_device(name: str) -> str:
    """``name`` unchanged, or for ``auto`` the type of :func:`best_device` (``"cuda"``, ``"cpu"``, ...)."""
    return best_device().type if name == AUTO else name


def check_device(name: str) -> str:
    """``name`` unchanged if torch can run on that device here (or it is ``auto``), else a
    :class:`DeviceError` that says what this machine has. torch's own errors for these cases are a
    driver message or a list of every device type it knows."""
    if name == AUTO:
        return name
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise DeviceError(
            f"unknown device {name!r}: use auto, cpu, or an accelerator such as cuda, cuda:1, mps or xpu "
            f"(this machine has {_described(available_devices())})"
        ) from None
    count = available_devices().get(device.type, 0)
    if count == 0:
        raise DeviceError(
            f"device {name!r} is not available: this machine has {_described(available_devices())}; "
            "use auto to pick the best one"
        )
    if device.index is not None and device.index >= count:
        indices = f"only {device.type}:0" if count == 1 else f"{device.type}:0 to {device.type}:{count - 1}"
        raise DeviceError(f"device {name!r} does not exist: this machine has {indices}")
    return name


def available_devices() -> dict[str, int]:
    """The device types torch can run on here, with how many devices of each."""
    found = {"cpu": 1}
    if torch.cuda.is_available():
        found["cuda"] = torch.cuda.device_count()
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        found["mps"] = 1
    xpu = getattr(torch, "xpu", None)
    if xpu is not None and xpu.is_available():
        found["xpu"] = xpu.device_count()
    accelerator = getattr(torch, "accelerator", None)
    if accelerator is not None and accelerator.is_available():
        current = accelerator.current_accelerator()
        if current is not None:
            found.setdefault(current.type, accelerator.device_count())
    return found


def _described(found: dict[str, int]) -> str:
    return ", ".join(kind if count == 1 else f"{count} x {kind}" for kind, count in found.items())


def same_device(actual: torch.device, wanted: torch.device) -> bool:
    """Whether a tensor on ``actual`` is already on ``wanted``; ``cuda`` without an index means the
    current CUDA device, as torch's ``.to("cuda")`` does."""
    if actual.type != wanted.type:
        return False
    if wanted.index is None and actual.type == "cuda":
        return actual.index == torch.cuda.current_device()
    return wanted.index is None or actual.index == wanted.index
