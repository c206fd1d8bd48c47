"""The data of the any-painting trainer: every step pairs ``batch`` photo crops with ``batch`` painting
crops, each drawn from its own seeded stream (see :mod:`.data`), so the pairs of step ``k`` depend
only on the seed and ``k``: resuming and several processes see exactly what one run sees.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ...depthstyle_core.errors import InputImageError
from ..data import ContentSource, CropSampler

PHOTOS_STREAM = 0
PAINTINGS_STREAM = 1


class PairSampler:
    """Photo and painting crops of ``image_size`` from images resized to shorter side ``load_size``.

    :meth:`batch` returns the photos and then the paintings in one tensor ``[2B,3,S,S]`` (one pinned
    copy to the device); :func:`split_pairs` takes them apart.
    """

    def __init__(
        self, photos: ContentSource, paintings: ContentSource, image_size: int, load_size: int, seed: int
    ) -> None:
        self.photos = CropSampler(photos, image_size, seed, short_side=load_size, stream=PHOTOS_STREAM)
        self.paintings = CropSampler(
            paintings, image_size, seed, short_side=load_size, stream=PAINTINGS_STREAM
        )

    def batch(self, step: int, batch_size: int, rank: int = 0, world_size: int = 1) -> Tensor:
        """This process's photos and paintings of step ``step`` (0-based), ``[2B,3,S,S]``."""
        photos = self.photos.batch(step, batch_size, rank, world_size)
        return torch.cat([photos, self.paintings.batch(step, batch_size, rank, world_size)])

    @property
    def failed(self) -> set[str]:
        """The photo and painting files that could not be decoded so far."""
        return self.photos.failed | self.paintings.failed


def split_pairs(batch: Tensor) -> tuple[Tensor, Tensor]:
    """``(photos, paintings)`` of a :meth:`PairSampler.batch`."""
    photos, paintings = batch.chunk(2)
    return photos, paintings


def first_readable(source: ContentSource, count: int, short_side: int, failed: set[str]) -> list[Tensor]:
    """Up to ``count`` images of ``source`` in its order, ``[1,3,h,w]`` with shorter side ``short_side``;
    files that do not decode are skipped and added to ``failed``. At least one must decode."""
    found: list[Tensor] = []
    for index in range(len(source)):
        if len(found) == count:
            break
        try:
            found.append(source.load_resized(index, short_side).unsqueeze(0))
        except InputImageError:
            failed.add(source.name(index))
    if not found:
        raise InputImageError(f"none of the {source.kind}s could be decoded ({source.description})")
    return found
