"""Optical flow between frames with OpenCV's DIS (Kroeger et al. 2016): no download, fast on a CPU.

Any OpenCV package that is installed works (``opencv-python``, ``-headless``, ``-contrib``, ...: DIS is in
the main module of each). The pack does not install one itself: a second OpenCV package beside the one
a ComfyUI environment already has overwrites its files (a contrib build loses its extra modules), so the
error below says to install one only when none is there.

A flow ``[B,2,H,W]`` (x then y, in pixels) from frame ``a`` to frame ``b`` gives, for every pixel ``p``
of ``a``, where the same point is in ``b``: ``a(p) ~ b(p + flow(p))``.
"""

from __future__ import annotations

from types import ModuleType

import numpy as np
import torch
from torch import Tensor

from ..errors import SettingsError

PRESETS = ("ultrafast", "fast", "medium")
DEFAULT_PRESET = "medium"
"""DIS's most accurate preset: on a 1080p pair it takes about 0.14 s on two CPU cores, against about
2.9 s for the built-in network's pass over one such frame."""

LUMA = (0.299, 0.587, 0.114)


class FlowUnavailableError(SettingsError):
    """No OpenCV is installed, so there is no optical flow."""


def _cv2() -> ModuleType:
    try:
        import cv2
    except ImportError as exc:
        raise FlowUnavailableError(
            "optical flow (frames 'flow', the warping error) needs OpenCV, and none is installed in this "
            "Python environment. Install one OpenCV package, e.g. 'pip install opencv-python-headless' "
            "(if another OpenCV package is already installed but fails to import, repair that one rather "
            f"than adding a second): {exc}"
        ) from exc
    return cv2


def flow_problem() -> str | None:
    """Why there is no optical flow here (no OpenCV), or None when there is."""
    try:
        _cv2()
    except FlowUnavailableError as exc:
        return str(exc)
    return None


def flow_backend_name(preset: str = DEFAULT_PRESET) -> str:
    """What computes the flow, for reports: e.g. ``opencv-dis-medium 4.10.0``."""
    return f"opencv-dis-{preset} {_cv2().__version__}"


def grey_frames(frames: Tensor) -> np.ndarray:
    """``[B,3,H,W]`` 0..1 frames as ``[B,H,W]`` uint8 luma, the input DIS takes."""
    weights = torch.tensor(LUMA, dtype=torch.float32, device=frames.device).view(1, 3, 1, 1)
    luma = (frames[:, :3].float() * weights).sum(dim=1).clamp(0, 1)
    return (luma * 255).round().to(torch.uint8).cpu().numpy()


class DISFlow:
    """DIS optical flow at one preset; one instance reuses its buffers across the pairs of a clip."""

    def __init__(self, preset: str = DEFAULT_PRESET) -> None:
        if preset not in PRESETS:
            raise SettingsError(f"flow preset must be one of {PRESETS}, got {preset!r}")
        cv2 = _cv2()
        self.preset = preset
        self._dis = cv2.DISOpticalFlow_create(getattr(cv2, f"DISOPTICAL_FLOW_PRESET_{preset.upper()}"))

    @property
    def name(self) -> str:
        return flow_backend_name(self.preset)

    def grey(self, frames: Tensor) -> np.ndarray:
        """Frames in the form :meth:`between` takes (convert each frame once when it takes part in
        several pairs)."""
        return grey_frames(frames)

    def between(self, source: np.ndarray, target: np.ndarray) -> Tensor:
        """Flow ``[1,2,H,W]`` float32 from one grey frame ``[H,W]`` (uint8) to another."""
        if source.shape != target.shape:
            raise SettingsError(f"flow needs frames of one size, got {source.shape} and {target.shape}")
        flow = self._dis.calc(np.ascontiguousarray(source), np.ascontiguousarray(target), None)
        return torch.from_numpy(flow).permute(2, 0, 1).unsqueeze(0).contiguous()

    def __call__(self, source: Tensor, target: Tensor) -> Tensor:
        """Flow ``[B,2,H,W]`` from each frame of ``source`` to the frame of ``target`` at the same index
        (``[B,3,H,W]`` 0..1, on the CPU or not; the flow comes back on ``source``'s device)."""
        if source.shape != target.shape:
            raise SettingsError(
                f"flow needs two batches of one shape, got {tuple(source.shape)} and {tuple(target.shape)}"
            )
        a, b = self.grey(source), self.grey(target)
        flows = [self.between(x, y) for x, y in zip(a, b, strict=True)]
        return torch.cat(flows).to(source.device)
