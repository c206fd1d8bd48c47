"""What paints a batch of photos in a dataset stylisation: the any-painting network with each photo's
own painting (its signals from the :class:`~.paintings.PaintingTable`), or one trained style network."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Protocol

from torch import Tensor, nn

from ...depthstyle_core.any_style.stylize import stylize_any
from ...depthstyle_core.depth import DepthEstimator, estimate_depth
from ...depthstyle_core.models.microast import MicroAST
from ...depthstyle_core.models.transformer_net import TransformerNet
from ...depthstyle_core.stylize import stylize
from .config import DatasetConfig
from .paintings import PaintingTable
from .records import SkippedRow


class Painter(Protocol):
    """What paints the photos of a run: ``pool_size`` paintings to draw from, each with a ``name`` for
    the manifest; ``record`` says which (for the run's settings), ``unreadable`` which were left out."""

    pool_size: int
    record: str
    unreadable: list[SkippedRow]

    def name(self, painting: int) -> str: ...

    def paint(self, photos: Tensor, paintings: list[int]) -> Tensor: ...


def weights_fingerprint(net: nn.Module) -> str:
    """A sha256 of a network's weights: a rerun must paint with the same network."""
    digest = hashlib.sha256()
    for name, tensor in sorted(net.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


@dataclass
class AnyPaintingPainter:
    """Each photo of a batch painted with its own painting of ``table`` by the any-painting network."""

    model: MicroAST
    table: PaintingTable
    config: DatasetConfig
    depth: DepthEstimator | None = None

    @property
    def pool_size(self) -> int:
        return len(self.table)

    @property
    def record(self) -> str:
        return f"{len(self.table)} readable, sha256 {self.table.fingerprint()}"

    @property
    def unreadable(self) -> list[SkippedRow]:
        return self.table.unreadable

    def name(self, painting: int) -> str:
        return self.table.names[painting]

    def paint(self, photos: Tensor, paintings: list[int]) -> Tensor:
        """``[B,3,H,W]`` 0..1 photos on the device, painting ``paintings[i]`` for photo ``i``."""
        config = self.config
        depth = None
        if self.depth is not None and config.depth_preserve > 0:
            depth = estimate_depth(self.depth, photos, chunk_size=photos.shape[0])
        return stylize_any(
            self.model,
            photos,
            self.table.signals(paintings),
            strength=config.strength,
            depth=depth,
            depth_preserve=config.depth_preserve if depth is not None else 0.0,
            style_size=config.style_size,
            preserve_color=config.preserve_color,
            chunk_size=photos.shape[0],
            precision=config.precision,
        )


@dataclass
class TrainedStylePainter:
    """Every photo painted by one trained style network, named ``label`` in the manifest."""

    net: TransformerNet
    label: str
    config: DatasetConfig
    unreadable: list[SkippedRow] = field(default_factory=list)

    pool_size = 1

    @property
    def record(self) -> str:
        return f"style model {self.label}"

    def name(self, painting: int) -> str:
        return self.label

    def paint(self, photos: Tensor, paintings: list[int]) -> Tensor:
        config = self.config
        return stylize(
            self.net,
            photos,
            strength=config.strength,
            preserve_color=config.preserve_color,
            chunk_size=photos.shape[0],
            precision=config.precision,
        )
