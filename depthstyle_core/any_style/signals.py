"""A painting's signals for the any-painting network: what its decoder takes from a painting (mean,
spread, weights and biases at its two stages), for one painting, a blend of several, or each photo's own.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ..errors import InputImageError, SettingsError
from ..images import to_rgb
from ..models.microast import MicroASTParts, StyleSignals
from ..stylize import long_side_size, resize_images
from . import DEFAULT_STYLE_SIZE

Paintings = Tensor | Sequence[Tensor]
"""One painting ``[1,C,h,w]`` (or ``[C,h,w]``), a batch ``[N,C,h,w]``, or a list of paintings of any sizes."""


def style_signals(
    model: MicroASTParts,
    style: Paintings | StyleSignals,
    *,
    style_weights: Sequence[float] | None = None,
    style_size: int = DEFAULT_STYLE_SIZE,
    device: torch.device | str | None = None,
) -> StyleSignals:
    """The signals ``[1,...]`` of a painting or a blend of paintings (see :func:`stylize_any`), on
    ``device`` (default: the model's, for a torch network); signals given are moved there unchanged."""
    if device is None:
        device = next(model.parameters()).device  # type: ignore[attr-defined] - a torch network
    device = torch.device(device)
    if isinstance(style, StyleSignals):
        if style_weights is not None:
            raise ValueError("style_weights blend paintings; signals are already blended")
        return style.map(lambda t: t.to(device))
    with torch.no_grad():
        return blend_signals(model, _checked_paintings(style), style_weights, style_size, device)


def painting_signals(
    model: MicroASTParts, painting: Tensor, style_size: int, device: torch.device
) -> StyleSignals:
    """One painting's signals, the painting resized to ``style_size`` on its long side."""
    size = long_side_size(*painting.shape[-2:], style_size)
    return model.style_signals(resize_images(painting.to(device), size).clamp(0, 1))


def blend_signals(
    model: MicroASTParts,
    paintings: list[Tensor],
    weights: Sequence[float] | None,
    style_size: int,
    device: torch.device,
) -> StyleSignals:
    """The paintings' signals blended by ``weights`` (normalised to sum 1; default equal)."""
    shares = _shares(weights, len(paintings))
    signals = [
        painting_signals(model, p, style_size, device)
        for p, share in zip(paintings, shares, strict=True)
        if share
    ]
    kept = [share for share in shares if share]
    return signals[0].map(lambda *values: sum(s * v for s, v in zip(kept, values, strict=True)), *signals[1:])


def _shares(weights: Sequence[float] | None, count: int) -> list[float]:
    if weights is None:
        return [1.0 / count] * count
    weights = [float(w) for w in weights]
    if len(weights) != count:
        raise SettingsError(
            f"got {len(weights)} style weights for {count} paintings: give one weight per painting"
        )
    if any(not w >= 0 or w == float("inf") for w in weights) or sum(weights) <= 0:
        raise SettingsError(f"style weights must be finite, 0 or more, and not all 0; got {weights}")
    total = sum(weights)
    return [w / total for w in weights]


def own_signals(
    model: MicroASTParts, content: Tensor, style_size: int, device: torch.device, chunk_size: int
) -> StyleSignals:
    """Each photo's own signals ``[B,...]``, the photo seen at the paintings' working size."""
    parts = [
        painting_signals(model, content[start : start + chunk_size], style_size, device)
        for start in range(0, content.shape[0], chunk_size)
    ]
    return parts[0].map(lambda *values: torch.cat(values), *parts[1:])


def _checked_paintings(style: Paintings) -> list[Tensor]:
    """Each painting as ``[1,3,h,w]`` float32."""
    if isinstance(style, Tensor):
        style = [style] if style.ndim == 3 else list(style.unbind(0)) if style.ndim == 4 else [style]
    paintings = []
    for index, painting in enumerate(style):
        if not isinstance(painting, Tensor) or painting.ndim not in (3, 4):
            shape = tuple(painting.shape) if isinstance(painting, Tensor) else type(painting).__name__
            raise InputImageError(
                f"painting {index + 1} must be an image tensor [C,H,W] or [1,C,H,W], got {shape}"
            )
        rgb = to_rgb(painting if painting.ndim == 4 else painting.unsqueeze(0)).float()
        if rgb.shape[0] != 1 or rgb.shape[-1] == 0 or rgb.shape[-2] == 0:
            raise InputImageError(
                f"painting {index + 1} is empty or not a single image: {tuple(painting.shape)}"
            )
        if not bool(torch.isfinite(rgb).all()):
            raise InputImageError(f"painting {index + 1} contains NaN or infinite values")
        paintings.append(rgb)
    if not paintings:
        raise InputImageError("no painting given: pass at least one style image")
    return paintings
