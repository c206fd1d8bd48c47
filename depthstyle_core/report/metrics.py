"""The structure report: how well a stylised image keeps the content image's structure.

For each (content, stylised) pair:

- depth agreement, both images through the same depth network (:mod:`.depth_agreement`: scale-and-shift
  aligned AbsRel and delta<1.25 in depth space, Spearman's rho of the disparity maps);
- outline agreement: F1 (and precision, recall) of Canny-style edges of the two luminance images, matched
  within a pixel tolerance (:mod:`.edges`);
- SSIM of the two luminance images (BT.601), Gaussian window 11, sigma 1.5 (:mod:`.ssim`);
- with a style image and VGG-16: the style distance, the sum over relu1_2, relu2_2, relu3_3 and relu4_3 of
  the mean squared difference of Gram matrices (divided by C*H*W), the training's style loss.

A stylised image of another size than its content image is resized to it (bilinear, antialiased) first.
Without a depth network the depth numbers are undefined (None in JSON) and everything else is measured.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..depth import DepthEstimator, estimate_depth
from ..errors import InputImageError, OperationCancelled
from ..images import to_rgb
from ..losses import STYLE_LAYERS, gram_matrix
from ..models.vgg import VGG16Features
from ..stylize import luminance
from .depth_agreement import DepthAgreement, depth_agreement
from .edges import DEFAULT_TOLERANCE, detect_edges, edge_agreement
from .ssim import ssim

METRIC_NAMES = (
    "depth_absrel",
    "depth_delta1",
    "depth_spearman",
    "edge_f1",
    "edge_precision",
    "edge_recall",
    "ssim",
    "style_distance",
)
LOWER_IS_BETTER = frozenset({"depth_absrel", "style_distance"})
STYLE_SIZE = 512  # the style image's longer side for its Gram matrices, as in training
STYLE_MAX_SIDE = 1024  # stylised images are scaled down to this longer side for VGG, to bound memory

StopCallback = Callable[[], bool]


@dataclass(frozen=True)
class StructureMetrics:
    """The numbers of one pair; ``style_distance`` is None without a style image, NaN marks undefined."""

    depth_absrel: float
    depth_delta1: float
    depth_spearman: float
    edge_f1: float
    edge_precision: float
    edge_recall: float
    ssim: float
    style_distance: float | None = None

    def as_dict(self) -> dict[str, float | None]:
        """The metrics by name, in :data:`METRIC_NAMES` order; NaN becomes None (JSON has no NaN)."""
        return {name: _finite_or_none(value) for name, value in asdict(self).items()}


@dataclass(frozen=True)
class StructureReport:
    """One pair's metrics and what the figure shows: both images ``[3,H,W]``, the content's raw depth
    ``[H,W]`` and the depth comparison (aligned stylised depth, per-pixel error); no depth without a depth
    network."""

    metrics: StructureMetrics
    content: Tensor
    stylized: Tensor
    content_depth: Tensor | None
    depth: DepthAgreement | None


def _finite_or_none(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def match_size(images: Tensor, size: tuple[int, int]) -> Tensor:
    """``[B,C,H,W]`` resized to ``size`` (bilinear, antialiased), unchanged when it already has that size."""
    if tuple(images.shape[-2:]) == tuple(size):
        return images
    return F.interpolate(images, size=size, mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)


def _fit_longer_side(images: Tensor, side: int | None) -> Tensor:
    height, width = images.shape[-2:]
    if not side or max(height, width) <= side:
        return images
    scale = side / max(height, width)
    return match_size(images, (max(1, round(height * scale)), max(1, round(width * scale))))


def style_distance(
    vgg: VGG16Features,
    stylized: Tensor,
    style: Tensor,
    *,
    style_size: int | None = STYLE_SIZE,
    max_side: int | None = STYLE_MAX_SIDE,
) -> list[float]:
    """Gram-matrix distance of each stylised image ``[B,C,H,W]`` to the style image ``[1,C,h,w]``.

    The style image is resized to ``style_size`` on its longer side (None: as it is), stylised images
    larger than ``max_side`` are scaled down to it. Runs where ``vgg``'s weights are.
    """
    device = next(vgg.parameters()).device
    with torch.no_grad():
        style_rgb = _fit_longer_side(to_rgb(style[:1]).float(), style_size).to(device)
        targets = {layer: gram_matrix(f) for layer, f in vgg(style_rgb, STYLE_LAYERS).items()}
        distances = []
        for image in to_rgb(stylized).float():
            features = vgg(_fit_longer_side(image.unsqueeze(0), max_side).to(device), STYLE_LAYERS)
            total = sum(F.mse_loss(gram_matrix(features[layer]), targets[layer]) for layer in STYLE_LAYERS)
            distances.append(float(total))
    return distances


def _pairs(content: Tensor, stylized: Tensor) -> tuple[Tensor, Tensor]:
    content, stylized = to_rgb(content).float(), to_rgb(stylized).float()
    if content.shape[0] not in (1, stylized.shape[0]):
        raise InputImageError(
            f"got {content.shape[0]} content images and {stylized.shape[0]} stylised images: give one "
            "content image for all stylised images, or one per stylised image"
        )
    return content, match_size(stylized, tuple(content.shape[-2:]))


def evaluate_structure(
    content: Tensor,
    stylized: Tensor,
    depth_model: DepthEstimator | None,
    *,
    style: Tensor | None = None,
    vgg: VGG16Features | None = None,
    resolution: int = 518,
    edge_tolerance: int = DEFAULT_TOLERANCE,
    should_stop: StopCallback | None = None,
) -> list[StructureReport]:
    """The structure report of each stylised image ``[B,C,H,W]`` against its content image (``[B,C,H,W]``,
    or ``[1,C,H,W]`` for all), 0..1. The style distance is measured when ``style`` is given (needs ``vgg``);
    the depth agreement when there is a ``depth_model``.

    ``resolution`` is the depth network's processing size (shorter side). Images need at least 14 pixels
    on each side. ``should_stop()`` returning True raises OperationCancelled.
    """
    if style is not None and vgg is None:
        raise ValueError("a style image needs the VGG-16 network (vgg=load_vgg16()) for the style distance")
    content, stylized = _pairs(content, stylized)
    height, width = content.shape[-2:]
    if min(height, width) < 14:
        raise InputImageError(
            f"images need at least 14x14 pixels for the structure report, got {width}x{height}"
        )
    with torch.no_grad():
        content_depths = stylized_depths = None
        if depth_model is not None:
            depths = estimate_depth(
                depth_model,
                torch.cat([content, stylized]),
                resolution=resolution,
                normalization="raw",
                should_stop=should_stop,
            )[:, 0].double()
            content_depths, stylized_depths = depths[: content.shape[0]], depths[content.shape[0] :]
        content_luma, stylized_luma = luminance(content), luminance(stylized)
        content_edges, stylized_edges = detect_edges(content_luma), detect_edges(stylized_luma)
        styles = style_distance(vgg, stylized, style) if style is not None else None
    reports = []
    for index in range(stylized.shape[0]):
        if should_stop is not None and should_stop():
            raise OperationCancelled(
                f"the structure report stopped after {index} of {stylized.shape[0]} images"
            )
        source = index if content.shape[0] > 1 else 0
        depth = None
        if content_depths is not None:
            depth = depth_agreement(stylized_depths[index], content_depths[source])
        edges = edge_agreement(content_edges[source], stylized_edges[index], edge_tolerance)
        metrics = StructureMetrics(
            depth_absrel=depth.absrel if depth else math.nan,
            depth_delta1=depth.delta1 if depth else math.nan,
            depth_spearman=depth.spearman if depth else math.nan,
            edge_f1=edges.f1,
            edge_precision=edges.precision,
            edge_recall=edges.recall,
            ssim=float(ssim(content_luma[source : source + 1], stylized_luma[index : index + 1])[0]),
            style_distance=None if styles is None else styles[index],
        )
        content_depth = None if content_depths is None else content_depths[source]
        reports.append(StructureReport(metrics, content[source], stylized[index], content_depth, depth))
    return reports


def mean_metrics(metrics: Iterable[StructureMetrics | Mapping[str, float | None]]) -> dict[str, float | None]:
    """The mean of each metric over the pairs where it is defined (None where it is defined for none)."""
    rows = [m.as_dict() if isinstance(m, StructureMetrics) else dict(m) for m in metrics]
    means: dict[str, float | None] = {}
    for name in METRIC_NAMES:
        values = [row[name] for row in rows if row.get(name) is not None]
        means[name] = sum(values) / len(values) if values else None
    return means


def metrics_json(reports: Sequence[StructureReport], settings: Mapping[str, object]) -> dict[str, object]:
    """A JSON-ready summary: the settings, each pair's metrics and their means."""
    metrics = [report.metrics for report in reports]
    return {
        "settings": dict(settings),
        "mean": mean_metrics(metrics),
        "images": [m.as_dict() for m in metrics],
    }
