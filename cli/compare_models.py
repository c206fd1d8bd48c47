"""The models ``depthstyle compare`` compares: style models (one style each) and any-painting models
(the built-in network, or files of its architecture such as a depth-aware fine-tune), each behind
one call ``paint(photo, painting)``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .networks import load_network

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Painter:
    """One compared model: its label, whether it needs a painting, and how it paints a photo
    ``[1,3,H,W]`` (with a painting for an any-painting model; a style model ignores it)."""

    label: str
    needs_painting: bool
    paint: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]


def model_labels(models: Sequence[str]) -> list[str]:
    """A short, unique label per model: its file stem, numbered when two stems are the same."""
    stems = [Path(model).stem for model in models]
    return [stem if stems.count(stem) == 1 else f"{stem} ({index + 1})" for index, stem in enumerate(stems)]


def load_painters(models: Sequence[str], models_dir: Path, device: str, tile: int) -> list[Painter]:
    """A painter per model name (see :func:`.networks.load_network`)."""
    from ..depthstyle_core.models.microast import MicroAST

    painters = []
    for name, label in zip(models, model_labels(models), strict=True):
        net, _ = load_network(name, models_dir, device)
        painters.append(
            _any_painter(label, net, tile) if isinstance(net, MicroAST) else _style_painter(label, net, tile)
        )
    return painters


def _any_painter(label: str, net: torch.nn.Module, tile: int) -> Painter:
    from ..depthstyle_core.any_style.stylize import stylize_any

    def paint(photo: torch.Tensor, painting: torch.Tensor | None) -> torch.Tensor:
        return stylize_any(net, photo, painting, tile=tile)

    return Painter(label, True, paint)


def _style_painter(label: str, net: torch.nn.Module, tile: int) -> Painter:
    """A style model paints its own style: one result per photo, reused for every painting."""
    from ..depthstyle_core.stylize import stylize

    last: list[tuple[torch.Tensor, torch.Tensor]] = []

    def paint(photo: torch.Tensor, painting: torch.Tensor | None) -> torch.Tensor:
        if not last or last[0][0] is not photo:
            last[:] = [(photo, stylize(net, photo, tile_size=tile))]
        return last[0][1]

    return Painter(label, False, paint)
