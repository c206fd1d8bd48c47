"""Outline agreement: a Canny-style edge detector and the F1 score of two edge maps with a pixel tolerance.

The detector (Canny 1986, with the automatic thresholds of MATLAB's ``edge(I, "canny")``):

1. Gaussian blur with sigma :data:`EDGE_SIGMA` (2 px: outlines, not brush-stroke texture).
2. Sobel gradients (kernels divided by 8, so a magnitude is a luminance change per pixel), replicated borders.
3. Non-maximum suppression: a pixel stays if its magnitude is at least that of both neighbours along its
   gradient direction, quantised to 0, 45, 90 or 135 degrees.
4. Thresholds that adapt to the image: ``high`` is the :data:`NOT_EDGE_FRACTION` (70 %) quantile of the
   gradient magnitude over the image, but at least :data:`MIN_GRADIENT`, so a flat or nearly flat image
   has no edges; ``low = 0.4 * high``.
5. Hysteresis: pixels above ``high`` are edges, and so are pixels above ``low`` connected to them through
   8-neighbours above ``low``.

Matching: an edge pixel of one map counts as matched when the other map has an edge pixel within
``tolerance`` pixels horizontally and vertically (a ``(2*tolerance+1)`` square). Matches are not one-to-one.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from .ssim import gaussian_filter

EDGE_SIGMA = 2.0
NOT_EDGE_FRACTION = 0.7
LOW_RATIO = 0.4
MIN_GRADIENT = 0.01
DEFAULT_TOLERANCE = 2
_SOBEL_X = ((-1.0, 0.0, 1.0), (-2.0, 0.0, 2.0), (-1.0, 0.0, 1.0))
# Offsets (dy, dx) of the neighbours along the gradient for the four quantised directions.
_DIRECTION_OFFSETS = (((0, 1), (0, -1)), ((1, 1), (-1, -1)), ((1, 0), (-1, 0)), ((1, -1), (-1, 1)))


@dataclass(frozen=True)
class EdgeAgreement:
    """How well the edges of a test image match those of a reference image."""

    f1: float
    precision: float  # share of the test image's edge pixels near a reference edge
    recall: float  # share of the reference's edge pixels near an edge of the test image


def _gradients(luma: Tensor) -> tuple[Tensor, Tensor]:
    kernel_x = luma.new_tensor(_SOBEL_X) / 8
    padded = F.pad(luma, (1, 1, 1, 1), mode="replicate")
    gx = F.conv2d(padded, kernel_x.view(1, 1, 3, 3))
    gy = F.conv2d(padded, kernel_x.t().contiguous().view(1, 1, 3, 3))
    return gx, gy


def _neighbour(magnitude: Tensor, dy: int, dx: int) -> Tensor:
    """The magnitude of the pixel at (y+dy, x+dx), zero outside the image."""
    padded = F.pad(magnitude, (1, 1, 1, 1))
    height, width = magnitude.shape[-2:]
    return padded[..., 1 + dy : 1 + dy + height, 1 + dx : 1 + dx + width]


def _non_maximum_suppression(magnitude: Tensor, gx: Tensor, gy: Tensor) -> Tensor:
    angle = torch.rad2deg(torch.atan2(gy, gx)) % 180
    sector = ((angle + 22.5) // 45).long() % 4
    keep = torch.zeros_like(magnitude, dtype=torch.bool)
    for index, ((dy1, dx1), (dy2, dx2)) in enumerate(_DIRECTION_OFFSETS):
        peak = (magnitude >= _neighbour(magnitude, dy1, dx1)) & (magnitude >= _neighbour(magnitude, dy2, dx2))
        keep |= (sector == index) & peak
    return torch.where(keep, magnitude, torch.zeros_like(magnitude))


def hysteresis(strong: Tensor, weak: Tensor) -> Tensor:
    """The ``weak`` pixels 8-connected through ``weak`` pixels to a ``strong`` one (boolean ``[...,H,W]``
    maps of one image; ``strong`` should lie inside ``weak``).

    Connected components of the weak pixels by hook-and-compress labelling: every round each pair of
    neighbours hooks the larger of their two roots onto the smaller, then all paths are compressed. Each
    round at least merges neighbouring trees, so a few rounds suffice even for long winding edges.
    """
    height, width = weak.shape[-2:]
    weak_map, strong_map = weak.reshape(height, width), strong.reshape(height, width)
    ys, xs = torch.nonzero(weak_map, as_tuple=True)
    count = ys.numel()
    out = torch.zeros(height, width, dtype=torch.bool, device=weak.device)
    if count == 0:
        return out.view(weak.shape)
    position = torch.full((height + 2, width + 2), -1, dtype=torch.long, device=weak.device)
    ids = torch.arange(count, device=weak.device)
    position[ys + 1, xs + 1] = ids
    starts, ends = [], []
    for dy, dx in ((0, 1), (1, -1), (1, 0), (1, 1)):  # each neighbouring pair once
        other = position[ys + 1 + dy, xs + 1 + dx]
        linked = other >= 0
        starts.append(ids[linked])
        ends.append(other[linked])
    start, end = torch.cat(starts), torch.cat(ends)
    parent = ids
    while True:
        a, b = parent[start], parent[end]
        hooked = parent.scatter_reduce(0, torch.maximum(a, b), torch.minimum(a, b), reduce="amin")
        while not torch.equal(jumped := hooked[hooked], hooked):
            hooked = jumped
        if torch.equal(hooked, parent):
            break
        parent = hooked
    connected = torch.zeros(count, dtype=torch.bool, device=weak.device)
    connected[parent[strong_map[ys, xs]]] = True
    out[ys, xs] = connected[parent]
    return out.view(weak.shape)


def edge_thresholds(magnitude: Tensor) -> tuple[float, float]:
    """(low, high) hysteresis thresholds of one image's ``[H,W]`` gradient magnitude."""
    flat = magnitude.flatten()
    rank = min(max(1, round(NOT_EDGE_FRACTION * flat.numel())), flat.numel())
    high = max(float(flat.kthvalue(rank).values), MIN_GRADIENT)
    return LOW_RATIO * high, high


def detect_edges(luma: Tensor, sigma: float = EDGE_SIGMA) -> Tensor:
    """Boolean edge maps ``[B,1,H,W]`` of greyscale images ``[B,1,H,W]`` in 0..1 (module docstring)."""
    blurred = gaussian_filter(luma.double(), sigma=sigma, radius=max(1, int(4 * sigma + 0.5)))
    gx, gy = _gradients(blurred)
    magnitude = torch.hypot(gx, gy)
    thin = _non_maximum_suppression(magnitude, gx, gy)
    maps = []
    for index in range(luma.shape[0]):
        low, high = edge_thresholds(magnitude[index, 0])
        maps.append(hysteresis(thin[index] >= high, thin[index] >= low))
    return torch.stack(maps)


def _near(edges: Tensor, tolerance: int) -> Tensor:
    if tolerance == 0:
        return edges
    size = 2 * tolerance + 1
    return F.max_pool2d(edges.float(), size, stride=1, padding=tolerance) > 0


def edge_agreement(reference: Tensor, test: Tensor, tolerance: int = DEFAULT_TOLERANCE) -> EdgeAgreement:
    """Precision, recall and F1 of the edge map ``test`` against ``reference`` (both ``[1,H,W]`` or
    ``[H,W]`` booleans). With no edges in a map its side counts as fully matched: two empty maps agree
    (F1 1); an empty test map against a non-empty reference has recall 0 (F1 0)."""
    if tolerance < 0:
        raise ValueError(f"the edge tolerance must be >= 0 pixels, got {tolerance}")
    if reference.shape != test.shape:
        raise ValueError(f"edge maps differ in shape: {tuple(reference.shape)} vs {tuple(test.shape)}")
    ref = reference.reshape(1, 1, *reference.shape[-2:]).bool()
    out = test.reshape(1, 1, *test.shape[-2:]).bool()
    ref_count, out_count = int(ref.sum()), int(out.sum())
    precision = float((out & _near(ref, tolerance)).sum()) / out_count if out_count else 1.0
    recall = float((ref & _near(out, tolerance)).sum()) / ref_count if ref_count else 1.0
    total = precision + recall
    f1 = 2 * precision * recall / total if total > 0 else 0.0
    return EdgeAgreement(f1=f1, precision=precision, recall=recall)
