"""``--depth-map FILE|FOLDER``: depth maps made elsewhere (another tool, or ``depthstyle depth``) instead
of a depth model. A file serves every photo; in a folder each photo ``x.*`` takes the image named
``x.*`` or ``x_depth.*`` (what ``depthstyle depth`` writes)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .common import expand_images

if TYPE_CHECKING:
    import torch


def paired_depth_maps(source: str, photos: Sequence[Path]) -> dict[Path, Path]:
    """The depth map of each photo, found before any work: every photo must have one."""
    from ..depthstyle_core.errors import InputImageError

    folder = Path(source)
    if folder.is_file():
        return dict.fromkeys(photos, folder)
    if not folder.is_dir():
        raise InputImageError(f"--depth-map {source}: no such file or folder")
    by_stem: dict[str, Path] = {}
    for path in expand_images([source]):
        by_stem.setdefault(path.stem.casefold(), path)
    pairs, missing = {}, []
    for photo in photos:
        found = by_stem.get(photo.stem.casefold()) or by_stem.get(f"{photo.stem}_depth".casefold())
        if found is None:
            missing.append(photo.name)
        else:
            pairs[photo] = found
    if missing:
        raise InputImageError(
            f"no depth map in {source} for {', '.join(missing)}: name each map like its photo (x.png for "
            "x.jpg) or x_depth.png, as `depthstyle depth` writes them"
        )
    return pairs


def depth_of(
    maps: dict[Path, Path], paths: Sequence[Path], images: torch.Tensor, normalization: str
) -> torch.Tensor:
    """The depth ``[B,1,H,W]`` of ``images`` (the photos at ``paths``) from their maps, normalised like
    a depth model's (``per_batch`` over a video's frames)."""
    import torch

    from ..depthstyle_core.depth import normalize_depth
    from ..depthstyle_core.depth_maps import depth_from_map
    from ..depthstyle_core.images import load_image

    _, _, height, width = images.shape
    planes = [depth_from_map(load_image(maps[path]), 1, height, width, "raw") for path in paths]
    return normalize_depth(torch.cat(planes), normalization)
