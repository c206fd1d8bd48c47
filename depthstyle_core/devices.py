"""Which torch device to run on when the user says ``auto``: the machine's accelerator, else the CPU."""

from __future__ import annotations

import torch

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


def same_device(actual: torch.device, wanted: torch.device) -> bool:
    """Whether a tensor on ``actual`` is already on ``wanted``; ``cuda`` without an index means the
    current CUDA device, as torch's ``.to("cuda")`` does."""
    if actual.type != wanted.type:
        return False
    if wanted.index is None and actual.type == "cuda":
        return actual.index == torch.cuda.current_device()
    return wanted.index is None or actual.index == wanted.index
