"""The models ``depthstyle compare`` compares: style models (one style each) and any-painting models
(the built-in network, or files of its architecture such as a depth-aware fine-tune), each behind
one call ``paint(photo, painting)``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

BUILTIN_MODEL = "builtin"


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
    """A painter per model name: ``builtin`` (the shipped any-painting network) or a model file, a path
    or a name in ``<models_dir>/styles/`` or ``<models_dir>/any_style/``; its architecture decides."""
    from ..depthstyle_core.any_style.model_file import build_any_style_model, load_any_style_model
    from ..depthstyle_core.checkpoint import read_safetensors
    from ..depthstyle_core.hub.resolve import resolve_model_file
    from ..depthstyle_core.models.microast import ARCHITECTURE
    from ..depthstyle_core.style_model import build_style_model

    painters = []
    for name, label in zip(models, model_labels(models), strict=True):
        if name == BUILTIN_MODEL:
            painters.append(_any_painter(label, load_any_style_model(device=device), tile))
            continue
        path = resolve_model_file(name, model_dirs=[models_dir / "styles", models_dir / "any_style"])
        tensors, metadata = read_safetensors(path)
        if metadata.get("architecture") == ARCHITECTURE:
            net = build_any_style_model(tensors, metadata, source=str(path)).to(device)
            painters.append(_any_painter(label, net, tile))
        else:
            net = build_style_model(tensors, metadata, source=str(path)).to(device)
            painters.append(_style_painter(label, net, tile))
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
