"""Every painting's style signals, computed once for the whole run and kept on the device.

The any-painting network takes from a painting only its signals (``style_signals``: a few hundred
numbers made by the style encoder and modulator), so each painting is decoded and encoded once, not once
per photo. With several processes each computes every ``world_size``-th painting and they exchange the
results; paintings that cannot be read are left out of the pool that photos draw from, and reported.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import Executor
from dataclasses import dataclass, fields

import numpy as np
import torch
from torch import Tensor

from ...depthstyle_core.any_style.signals import style_signals
from ...depthstyle_core.errors import InputImageError
from ...depthstyle_core.models.microast import MicroAST, StageSignals, StyleSignals
from ..distributed import Team
from .codec import failure_reason, load_painting
from .pipeline import bounded_map
from .plan import Listing
from .records import SkippedRow

_FIELDS = tuple(f.name for f in fields(StageSignals))


def flatten(signals: StyleSignals) -> Tensor:
    """``[B, D]``: every stage's mean, std, weight and bias, one row per painting."""
    parts = [getattr(stage, name) for stage in signals.stages for name in _FIELDS]
    return torch.cat([part.reshape(part.shape[0], -1) for part in parts], dim=1)


def unflatten(rows: Tensor, like: StyleSignals) -> StyleSignals:
    """The inverse of :func:`flatten`, shaped like the signals ``like`` (of one painting)."""
    shapes = [getattr(stage, name).shape[1:] for stage in like.stages for name in _FIELDS]
    parts = iter(rows.split([s.numel() for s in shapes], dim=1))
    stages = [
        StageSignals(**{name: next(parts).reshape(-1, *shapes[i]) for i, name in enumerate(_FIELDS, start)})
        for start in (0, len(_FIELDS))
    ]
    return StyleSignals((stages[0], stages[1]))


@dataclass
class PaintingTable:
    """The readable paintings (``names``, relative paths) and their signals, one row each, on the device;
    ``unreadable`` lists the others."""

    names: list[str]
    sizes: list[int]
    rows: Tensor
    like: StyleSignals
    unreadable: list[SkippedRow]

    def __len__(self) -> int:
        return len(self.names)

    def signals(self, indices: list[int]) -> StyleSignals:
        """The signals ``[B,...]`` of the paintings ``indices``, for one batch of photos."""
        index = torch.tensor(indices, device=self.rows.device)
        return unflatten(self.rows.index_select(0, index), self.like)

    def fingerprint(self) -> str:
        """A sha256 of the pool photos draw from: which paintings, and their sizes in bytes."""
        digest = hashlib.sha256()
        for name, size in zip(self.names, self.sizes, strict=True):
            digest.update(f"{name}\0{size}\n".encode())
        return digest.hexdigest()


def painting_table(
    listing: Listing, model: MicroAST, style_size: int, pool: Executor, ahead: int, team: Team
) -> PaintingTable:
    """Decode and encode every painting of ``listing`` once (this process its share, on ``pool``),
    then share the signals with the other processes."""
    device = next(model.parameters()).device
    mine = list(range(team.rank, len(listing.relative), team.world_size))
    computed: list[tuple[int, np.ndarray | None, str]] = []

    def load(index: int) -> Tensor:
        return load_painting(listing.path(listing.relative[index]), style_size)

    def reason(index: int, error: InputImageError) -> str:
        return failure_reason(error, listing.path(listing.relative[index]), listing.relative[index])

    with torch.inference_mode():
        for index, future in zip(mine, bounded_map(pool, load, mine, ahead), strict=True):
            try:
                painting = future.result()
            except InputImageError as exc:
                computed.append((index, None, reason(index, exc)))
                continue
            signals = style_signals(model, painting, style_size=style_size)
            computed.append((index, flatten(signals)[0].cpu().numpy(), ""))
    found = sorted(
        (entry for part in team.gather(computed, "sharing the paintings' style codes") for entry in part),
        key=lambda entry: entry[0],
    )
    readable = [(index, row) for index, row, _ in found if row is not None]
    unreadable = [
        SkippedRow("painting", listing.relative[index], reason) for index, row, reason in found if row is None
    ]
    if not readable:
        raise InputImageError(
            f"none of the {len(listing.relative)} paintings in {listing.root} could be read; "
            f"the first: {unreadable[0].reason}"
        )
    return PaintingTable(
        [listing.relative[index] for index, _ in readable],
        [listing.sizes[index] for index, _ in readable],
        torch.from_numpy(np.stack([row for _, row in readable])).to(device),
        _template(model, device),
        unreadable,
    )


def _template(model: MicroAST, device: torch.device) -> StyleSignals:
    """Signals of a small blank painting: only their shapes are used."""
    with torch.inference_mode():
        return model.style_signals(torch.zeros(1, 3, 16, 16, device=device))
