"""Networks named on the command line: ``builtin`` (the any-painting network that ships in the package)
or a model file (a path, or a name in ``<models-dir>/styles/`` or ``<models-dir>/any_style/``) whose
stored architecture says whether it is a style network or an any-painting one."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

BUILTIN_MODEL = "builtin"


def load_network(name: str, models_dir: Path, device: str = "cpu") -> tuple[torch.nn.Module, dict[str, str]]:
    """The network ``name`` on ``device`` and the metadata of its file (empty for ``builtin``)."""
    from ..depthstyle_core.any_style.model_file import build_any_style_model, load_any_style_model
    from ..depthstyle_core.checkpoint import read_safetensors
    from ..depthstyle_core.hub.resolve import resolve_model_file
    from ..depthstyle_core.models.microast import ARCHITECTURE
    from ..depthstyle_core.style_model import build_style_model

    if name == BUILTIN_MODEL:
        return load_any_style_model(device=device), {}
    path = resolve_model_file(name, model_dirs=[models_dir / "styles", models_dir / "any_style"])
    tensors, metadata = read_safetensors(path)
    if metadata.get("architecture") == ARCHITECTURE:
        return build_any_style_model(tensors, metadata, source=str(path)).to(device), metadata
    return build_style_model(tensors, metadata, source=str(path)).to(device), metadata
