"""What the trainers are given, made ready: image sources and the style image's fingerprint. (The
frozen loss networks are prepared by :mod:`.loss_networks`, shared with the per-image optimiser.)"""

from __future__ import annotations

import hashlib
import os

import torch
from torch import Tensor

from ..data import ContentSource


def fingerprint_tensor(tensor: Tensor) -> str:
    """sha256 of the tensor's float32 values (the style image a run was trained on)."""
    return hashlib.sha256(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes()).hexdigest()


def as_content_source(
    content: ContentSource | Tensor | str | os.PathLike, kind: str = "content image"
) -> ContentSource:
    """A :class:`ContentSource` from a source, an image batch or a folder path; ``kind`` names its
    images in messages ("content image", "photo", "painting")."""
    if isinstance(content, ContentSource):
        return content
    if isinstance(content, Tensor):
        return ContentSource.from_tensor(content.clone(), kind)
    return ContentSource.from_folder(content, kind)
