"""Depth agreement of two relative inverse-depth maps: the MiDaS / Depth Anything evaluation protocol
with the content image's depth as the reference, plus Spearman's rank correlation.

Depth Anything predicts relative inverse depth (disparity, near = larger) with unknown scale and shift.
What is computed, per image pair (reference ``r``: the content's map, prediction ``p``: the stylised one):

1. Valid pixels: ``r > VALID_FRACTION * max(r)`` (1e-3). Pixels with (nearly) zero disparity are
   infinitely far (sky); their depth ``1/r`` is undefined, so they are left out, as MiDaS leaves out pixels
   without ground truth. This also caps the reference depth at 1000 times its nearest depth.
2. Alignment in disparity space: the scale ``s`` and shift ``t`` minimising ``sum (s*p + t - r)^2`` over the
   valid pixels (least squares). The scale is constrained to ``s >= 0``: a negative scale would turn an
   inverted map (near and far swapped) into a perfect fit. When the unconstrained optimum has ``s < 0``
   (or ``p`` is constant) the constrained one is ``s = 0, t = mean(r)``.
3. The aligned disparity is clamped from below to the validity floor ``VALID_FRACTION * max(r)`` (the
   "disparity cap" of the MiDaS code), so tiny and negative values never reach the division, then both
   maps go to depth space: ``d = 1/disparity``.
4. ``AbsRel = mean |d_p - d_r| / d_r`` and ``delta1 = share of pixels with max(d_p/d_r, d_r/d_p) < 1.25``
   over the valid pixels (lower / higher is better).
5. Spearman's rho of ``p`` and ``r`` over all pixels (ties get their average rank): 1 when the stylised image
   keeps the depth order, -1 when it inverts it; undefined (NaN) when either map is constant.

With no valid pixel (a reference with no positive disparity) AbsRel and delta1 are NaN.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

VALID_FRACTION = 1e-3
DELTA_THRESHOLD = 1.25


@dataclass(frozen=True)
class DepthAgreement:
    """The depth scores of one pair and the maps they come from (``[H,W]``, float64)."""

    absrel: float
    delta1: float
    spearman: float
    scale: float
    shift: float
    aligned: Tensor  # the prediction's disparity after alignment and clamping
    valid: Tensor  # bool: pixels where the reference depth is defined
    error: Tensor  # |d_p - d_r| / d_r per pixel, NaN where not valid


def align_disparity(
    prediction: Tensor, reference: Tensor, valid: Tensor | None = None
) -> tuple[float, float]:
    """Least-squares ``(scale, shift)`` with ``scale >= 0`` mapping ``prediction`` onto ``reference`` over
    ``valid`` pixels (all when None): the step 2 of the module docstring."""
    p = prediction.double().flatten()
    r = reference.double().flatten()
    if valid is not None:
        keep = valid.flatten()
        p, r = p[keep], r[keep]
    if r.numel() == 0:
        return 0.0, math.nan
    p_mean, r_mean = p.mean(), r.mean()
    p_centred = p - p_mean
    variance = float((p_centred * p_centred).sum())
    scale = float((p_centred * (r - r_mean)).sum()) / variance if variance > 0 else 0.0
    if not scale > 0:
        return 0.0, float(r_mean)
    return scale, float(r_mean - scale * p_mean)


def _average_ranks(values: Tensor) -> Tensor:
    _, inverse, counts = torch.unique(values, sorted=True, return_inverse=True, return_counts=True)
    ends = counts.cumsum(0).double()
    return (ends - (counts.double() - 1) / 2)[inverse]


def spearman_rho(a: Tensor, b: Tensor) -> float:
    """Spearman's rank correlation of two same-shaped maps (ties: average ranks); NaN if one is constant."""
    if a.shape != b.shape:
        raise ValueError(f"maps differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")
    ranks_a = _average_ranks(a.double().flatten())
    ranks_b = _average_ranks(b.double().flatten())
    ranks_a, ranks_b = ranks_a - ranks_a.mean(), ranks_b - ranks_b.mean()
    norm = float(ranks_a.norm() * ranks_b.norm())
    return float((ranks_a * ranks_b).sum()) / norm if norm > 0 else math.nan


def depth_agreement(prediction: Tensor, reference: Tensor) -> DepthAgreement:
    """Compare the stylised image's disparity ``prediction`` with the content's ``reference`` (both
    ``[H,W]``, ``[1,H,W]`` or ``[1,1,H,W]``, relative inverse depth, larger = nearer), as the module
    docstring describes."""
    if prediction.shape != reference.shape:
        raise ValueError(f"depth maps differ in shape: {tuple(prediction.shape)} vs {tuple(reference.shape)}")
    p = prediction.double().reshape(prediction.shape[-2:])
    r = reference.double().reshape(reference.shape[-2:])
    floor = VALID_FRACTION * float(r.max())
    valid = r > floor if floor > 0 else torch.zeros_like(r, dtype=torch.bool)
    scale, shift = align_disparity(p, r, valid)
    if not bool(valid.any()):
        nan_map = torch.full_like(r, math.nan)
        return DepthAgreement(math.nan, math.nan, spearman_rho(p, r), scale, shift, p.clone(), valid, nan_map)
    aligned = (scale * p + shift).clamp_min(floor)
    depth_p, depth_r = 1.0 / aligned, 1.0 / r.clamp_min(floor)
    relative = (depth_p - depth_r).abs() / depth_r
    ratio = torch.maximum(depth_p / depth_r, depth_r / depth_p)
    return DepthAgreement(
        absrel=float(relative[valid].mean()),
        delta1=float((ratio[valid] < DELTA_THRESHOLD).double().mean()),
        spearman=spearman_rho(p, r),
        scale=scale,
        shift=shift,
        aligned=aligned,
        valid=valid,
        error=torch.where(valid, relative, torch.full_like(relative, math.nan)),
    )
