"""What the commands share: finding the images named on the command line, the default model folder."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")


def default_models_dir() -> Path:
    """Where the CLI looks for model files unless ``--models-dir`` says otherwise.

    Deliberately no environment variable: the Comfy Registry scanner flags packs that read them.
    """
    return Path.home() / ".cache" / "depthstyle" / "models"


def expand_images(inputs: Sequence[str]) -> list[Path]:
    """Image files named on the command line; folders contribute their images (recursively, sorted)."""
    found: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES))
        else:
            found.append(path)
    return found
