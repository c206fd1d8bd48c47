"""The input padding shared by the networks that downsample by 4 (TransformerNet, MicroAST).

Both halve the resolution twice and reflection-pad inside, so they need sides that are multiples of
:data:`STRIDE` and large enough for every internal reflection pad. Images of any other size are padded on
the right and bottom and the output is cropped back, so any size comes back at its own size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

STRIDE = 4  # two stride-2 convolutions: tiles must start on multiples of this to keep the pixel grids aligned
MIN_SIDE = 8  # smallest padded side for which every reflection pad inside the nets is valid


def padded_size(length: int) -> int:
    """The side a network works at internally: a multiple of STRIDE, at least MIN_SIDE."""
    return max(MIN_SIDE, -(-length // STRIDE) * STRIDE)


def pad_to_valid(x: Tensor) -> Tensor:
    """Pad right/bottom to :func:`padded_size` (reflect; replicate where the image is too small).

    While the network is being exported (ONNX) the sides are symbolic and cannot choose a branch: the
    graph takes sides of at least MIN_SIDE, where the padding is always a reflection, written as one."""
    height, width = x.shape[-2:]
    if _exporting():
        return F.pad(x, (0, (-width) % STRIDE, 0, (-height) % STRIDE), mode="reflect")
    pad_h = padded_size(height) - height
    pad_w = padded_size(width) - width
    if pad_w:
        x = F.pad(x, (0, pad_w, 0, 0), mode="reflect" if pad_w < width else "replicate")
    if pad_h:
        x = F.pad(x, (0, 0, 0, pad_h), mode="reflect" if pad_h < height else "replicate")
    return x


def _exporting() -> bool:
    is_exporting = getattr(torch.compiler, "is_exporting", None)  # torch >= 2.5
    return bool(is_exporting and is_exporting())
