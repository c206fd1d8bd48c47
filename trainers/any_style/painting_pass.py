"""The forward pass of one any-painting training step, as one module so that DistributedDataParallel
sees every use of the weights: the paintings' signals, the results, and the results read back by the
style encoder (for the contrastive loss)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from ...depthstyle_core.models.microast import MicroAST, StyleSignals
from ...depthstyle_core.models.padding import pad_to_valid


@dataclass(frozen=True)
class PassOutput:
    """``results`` ``[B,3,H,W]`` (not clamped), the paintings' signals and the results' own signals."""

    results: Tensor
    painting_signals: StyleSignals
    result_signals: StyleSignals


class PaintingPass(nn.Module):
    """``(photos, paintings) -> PassOutput`` with the network's weights; ``net`` is the MicroAST trained."""

    def __init__(self, net: MicroAST) -> None:
        super().__init__()
        self.net = net

    def forward(self, photos: Tensor, paintings: Tensor, read_back: bool = True) -> PassOutput:
        """Paint each photo with its painting (the authors' alpha-1 output, at the photo's size);
        ``read_back`` False skips the results' signals (no contrastive loss)."""
        height, width = photos.shape[-2:]
        signals = self.net.style_signals(paintings)
        results = self.net.decode(self.net.content_features(pad_to_valid(photos)), signals)
        results = results[..., :height, :width]
        return PassOutput(results, signals, self.net.style_signals(results) if read_back else signals)
