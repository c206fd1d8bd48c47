"""Optical flow (DIS), warping and its trust masks, and the warping error of Lai et al. (ECCV 2018), on
synthetic clips whose motion is known exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import binary_erosion, distance_transform_edt, map_coordinates

from depthstyle.depthstyle_core.errors import InputImageError, SettingsError
from depthstyle.depthstyle_core.video.flow import DISFlow
from depthstyle.depthstyle_core.video.warp import (
    consistent,
    flow_to_grid,
    identity_grid,
    inside,
    motion_boundary,
    trusted,
    warp,
)
from depthstyle.depthstyle_core.video.warp_error import (
    PairError,
    WarpingErrorMeter,
    clip_warping_errors,
    mean_errors,
    pair_warping_error,
)

from .motion_scenes import disc_clip, disc_masks, pan_clip, texture

pytestmark = pytest.mark.usefixtures("single_thread")


class CachedFlow(DISFlow):
    """DIS flow computed once per ordered pair of grey frames, so that the library's meter and the
    reference implementation below are fed the very same flow fields."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: dict[tuple[bytes, bytes], torch.Tensor] = {}

    def between(self, source: np.ndarray, target: np.ndarray) -> torch.Tensor:
        key = (source.tobytes(), target.tobytes())
        if key not in self.fields:
            self.fields[key] = super().between(source, target)
        return self.fields[key]


def _sample(image: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``image`` ``[C,H,W]`` read bilinearly at pixel coordinates, clamped at the border."""
    return np.stack([map_coordinates(channel, [y, x], order=1, mode="nearest") for channel in image])


def _squared(field: np.ndarray) -> np.ndarray:
    return (field**2).sum(axis=0)


def lai_warping_error(first: np.ndarray, second: np.ndarray, fw: np.ndarray, bw: np.ndarray) -> tuple:
    """Lai et al.'s warping error written from the paper's definition in float64: ``second`` warped onto
    ``first`` along ``fw`` (first -> second), pixels left out where ``fw`` and ``bw`` disagree or on a
    motion boundary of ``fw``. Returns (error, kept mask)."""
    height, width = fw.shape[1:]
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    x, y = xs + fw[0], ys + fw[1]
    bw_there = _sample(bw, x, y)
    occluded = _squared(fw + bw_there) > 0.01 * (_squared(fw) + _squared(bw_there)) + 0.5
    du, dv = np.zeros_like(fw), np.zeros_like(fw)
    du[:, :, :-1] = fw[:, :, :-1] - fw[:, :, 1:]
    dv[:, :-1, :] = fw[:, :-1, :] - fw[:, 1:, :]
    boundary = _squared(du) + _squared(dv) > 0.01 * _squared(fw) + 0.002
    keep = ~(occluded | boundary)
    difference = (_sample(second, x, y) - first) ** 2
    return (difference[:, keep].mean() if keep.any() else difference.mean()), keep


def reference_errors(flow: CachedFlow, pair: PairError, *clips: torch.Tensor) -> tuple[list, np.ndarray]:
    """:func:`lai_warping_error` of each clip's frames of ``pair``, along the flows ``flow`` computed on
    the input (the first clip); and the kept mask."""
    grey = flow.grey(clips[0][[pair.first, pair.second]])
    fw = flow.between(grey[0], grey[1])[0].double().numpy()
    bw = flow.between(grey[1], grey[0])[0].double().numpy()
    results = [
        lai_warping_error(c[pair.first].double().numpy(), c[pair.second].double().numpy(), fw, bw)
        for c in clips
    ]
    return [error for error, _ in results], results[0][1]


@pytest.fixture(scope="module")
def disc_scene() -> tuple[torch.Tensor, torch.Tensor]:
    """A disc of radius 28 moving by (4, 2) a frame over a still background, 128x160."""
    return disc_clip(3, 128, 160, (70, 64), (4, 2), 28, seed=3)


@pytest.mark.parametrize("motion", [(3.0, -2.0), (1.5, 0.5)], ids=["integer", "half-pixel"])
def test_dis_flow_recovers_a_known_pan(motion):
    frames = pan_clip(3, 96, 128, motion, seed=1)
    dis = DISFlow()
    flows = dis(frames[:2], frames[1:])
    assert flows.shape == (2, 2, 96, 128) and flows.dtype == torch.float32
    grey = dis.grey(frames)
    assert torch.equal(flows[1:], dis.between(grey[1], grey[2])), "the batch call is the pairwise one"
    interior = flows[:, :, 8:-8, 8:-8].permute(1, 0, 2, 3).reshape(2, -1)
    error = (interior - torch.tensor(motion).view(2, 1)).abs()
    assert error.median(dim=1).values.max() <= 0.1, interior.median(dim=1).values
    assert error.quantile(0.99, dim=1).max() <= 0.3


def test_dis_flow_follows_a_moving_disc_and_leaves_the_background_still(disc_scene):
    frames, masks = disc_scene
    flow = DISFlow()(frames[:1], frames[1:2])[0]
    disc, after = masks[0, 0].numpy(), masks[1, 0].numpy()
    core = torch.from_numpy(binary_erosion(disc, iterations=6))
    assert (flow[:, core].median(dim=1).values - torch.tensor([4.0, 2.0])).abs().max() <= 0.25
    background = torch.from_numpy(distance_transform_edt(~(disc | after)) > 8)
    speed = flow[:, background].norm(dim=0)
    assert speed.median() <= 0.01 and speed.quantile(0.99) <= 0.3, "the background does not move"


def test_flow_names_a_bad_preset_and_frames_of_two_sizes():
    with pytest.raises(SettingsError, match=r"flow preset must be one of .*, got 'slow'"):
        DISFlow("slow")
    dis = DISFlow("fast")
    with pytest.raises(SettingsError, match=r"flow needs frames of one size, got \(8, 8\) and \(8, 9\)"):
        dis.between(np.zeros((8, 8), np.uint8), np.zeros((8, 9), np.uint8))
    with pytest.raises(SettingsError, match="flow needs two batches of one shape"):
        dis(torch.rand(1, 3, 8, 8), torch.rand(2, 3, 8, 8))


def test_grids_add_the_flow_to_each_pixels_own_coordinates():
    grid = identity_grid(2, 3, 4)
    assert grid.shape == (2, 3, 4, 2)
    assert grid[1, 2, 3].tolist() == [3.0, 2.0], "x then y"
    flow = torch.zeros(1, 2, 3, 4)
    flow[0, 0, 1, 2], flow[0, 1, 1, 2] = 0.25, -1.5
    assert flow_to_grid(flow)[0, 1, 2].tolist() == [2.25, -0.5]
    coords = grid[:1].clone()
    coords[0, 0, :] = torch.tensor([[-0.5, -0.5], [3.5, 2.5], [-0.51, 1.0], [1.0, 2.51]])
    expected = torch.ones(1, 1, 3, 4, dtype=torch.bool)
    expected[0, 0, 0, 2:] = False
    assert torch.equal(inside(coords), expected), "border pixels count whole, a hair beyond does not"


@pytest.mark.parametrize("shift", [(3, -2), (-5, 4), (0, 1)])
def test_warp_along_a_constant_integer_flow_is_an_exact_shift(shift):
    image = texture(48, 64, seed=4)[None]
    flow = torch.tensor(shift, dtype=torch.float32).view(1, 2, 1, 1).expand(1, 2, 48, 64)
    moved = warp(image, flow)
    rows = np.clip(np.arange(48) + shift[1], 0, 47)
    cols = np.clip(np.arange(64) + shift[0], 0, 63)
    expected = image[0].numpy()[:, rows][:, :, cols]
    np.testing.assert_allclose(moved[0].numpy(), expected, rtol=0, atol=1e-5)  # float32 coordinates
    assert (moved - image).abs().mean() > 0.02, "the texture changes under a shift"


def test_warp_half_a_pixel_is_the_mean_of_the_two_neighbours():
    image = texture(32, 40, seed=5)[None]
    flow = torch.zeros(1, 2, 32, 40)
    flow[:, 0] = 0.5
    moved = warp(image, flow)
    expected = (image[..., :-1] + image[..., 1:]) / 2
    torch.testing.assert_close(moved[..., :-1], expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(moved[..., -1], image[..., -1], atol=1e-5, rtol=0)


def test_exact_flows_of_a_moving_disc_fail_the_checks_only_where_it_occludes():
    step, height, width = (4, 2), 64, 80
    masks = disc_masks(2, height, width, (30, 30), step, 12)[:, 0]
    before, after = masks[0], masks[1]
    forward = torch.zeros(1, 2, height, width)
    backward = torch.zeros(1, 2, height, width)
    forward[0, :, before] = torch.tensor(step, dtype=torch.float32).view(2, 1)
    backward[0, :, after] = -torch.tensor(step, dtype=torch.float32).view(2, 1)
    covered, uncovered = after & ~before, before & ~after
    assert covered.sum() > 50 and uncovered.sum() > 50
    assert torch.equal(consistent(forward, backward)[0, 0], ~covered), "hidden in the next frame"
    assert torch.equal(consistent(backward, forward)[0, 0], ~uncovered), "not there in the frame before"
    edge = torch.zeros_like(before)
    edge[:, :-1] |= before[:, :-1] != before[:, 1:]
    edge[:-1, :] |= before[:-1, :] != before[1:, :]
    assert torch.equal(motion_boundary(forward)[0, 0], edge)
    assert torch.equal(trusted(forward, backward)[0, 0], ~covered & ~edge)


def test_trusted_leaves_out_what_a_moving_disc_covers_and_uncovers_in_dis_flow(disc_scene):
    frames, masks = disc_scene
    dis = DISFlow()
    forward, backward = dis(frames[:1], frames[1:2]), dis(frames[1:2], frames[:1])
    before, after = masks[0, 0], masks[1, 0]
    covered, uncovered = after & ~before, before & ~after
    kept_forward, kept_backward = trusted(forward, backward)[0, 0], trusted(backward, forward)[0, 0]
    assert kept_forward[covered].float().mean() <= 0.2, "frame 0's pixels the disc hides in frame 1"
    assert kept_backward[uncovered].float().mean() <= 0.35, "frame 1's pixels the disc leaves"
    background = torch.from_numpy(distance_transform_edt(~(before | after).numpy()) > 8)
    core = torch.from_numpy(binary_erosion(before.numpy(), iterations=6))
    assert kept_forward[background].float().mean() >= 0.97
    assert kept_backward[background].float().mean() >= 0.97
    assert kept_forward[core].float().mean() >= 0.95, "the disc itself is followed"


def test_pair_warping_error_averages_over_the_kept_pixels_and_channels():
    first, second = torch.zeros(1, 3, 4, 5), torch.zeros(1, 3, 4, 5)
    second[0, 0, 1, 2], second[0, :, 3, 4] = 0.5, 1.0
    flow = torch.zeros(1, 2, 4, 5)
    keep = torch.zeros(1, 1, 4, 5)
    keep[0, 0, 1, :] = 1.0
    assert pair_warping_error(first, second, flow, keep) == pytest.approx(0.25 / 15)
    keep[0, 0, 3, 4] = 1.0
    assert pair_warping_error(first, second, flow, keep) == pytest.approx(3.25 / 18)
    flow[0, 0] = -1.0  # each pixel reads its left neighbour: the corner's brightness leaves the frame
    assert pair_warping_error(first, second, flow, keep) == pytest.approx(0.25 / 18)
    # As in Lai et al.'s evaluate_WarpError.py the sum stays masked and only the divisor falls back to
    # every pixel, so a pair with nothing kept scores 0.
    assert pair_warping_error(first, second, flow, torch.zeros(1, 1, 4, 5)) == 0.0


def test_warping_error_matches_an_independent_implementation_of_lai_et_al():
    frames, _ = disc_clip(5, 96, 128, (50, 48), (4, 2), 20, seed=3)
    pattern = 0.15 * (torch.rand(1, 3, 96, 128, generator=torch.Generator().manual_seed(9)) - 0.5)
    stuck = (frames + pattern).clamp(0, 1)  # a texture that stays put while the disc moves
    flow = CachedFlow()
    pairs = clip_warping_errors(frames, [stuck], flow=flow)
    assert [(p.first, p.second) for p in pairs] == [(0, 1), (1, 2), (2, 3), (3, 4)]
    assert len(flow.fields) == 8, "one flow each way per pair"
    for pair in pairs:
        reference, keep = reference_errors(flow, pair, frames, stuck)
        assert 0.8 <= keep.mean() <= 0.97, "the disc's edges and occlusions are left out, little else"
        assert pair.kept == pytest.approx(keep.mean(), abs=1e-6)
        assert pair.errors == pytest.approx(reference, rel=1e-5, abs=0)
        assert pair.errors[1] > 1.5 * pair.errors[0], "the texture left behind shows on the moving disc"
    assert len(flow.fields) == 8, "the reference read the very flows the meter used"
    assert mean_errors(pairs) == pytest.approx(np.mean([p.errors for p in pairs], axis=0), rel=1e-12)


def test_meter_measures_pairs_one_and_ten_frames_apart():
    frames = pan_clip(12, 64, 96, (1.0, 0.5), seed=6)
    flow = CachedFlow()
    meter = WarpingErrorMeter(1, gaps=(1, 10), flow=flow)
    backwards = frames.flip(0)  # the clip played in reverse: it does not follow the flow
    completed = [meter.add(frame, reverse) for frame, reverse in zip(frames, backwards, strict=True)]
    assert [len(done) for done in completed] == [0] + [1] * 9 + [2, 2]
    assert len(meter.pairs[1]) == 11 and [(p.first, p.second) for p in meter.pairs[10]] == [(0, 10), (1, 11)]
    grey = flow.grey(frames)
    for pair in meter.pairs[10]:
        forward = flow.between(grey[pair.first], grey[pair.second])[0]
        assert (forward.flatten(1).median(dim=1).values - torch.tensor([10.0, 5.0])).abs().max() <= 0.25
        expected, _ = reference_errors(flow, pair, frames, backwards)
        assert pair.errors == pytest.approx(expected, rel=1e-5, abs=0)
        assert len(flow.fields) == 2 * 13, "the reference read the very flows the meter used"
        assert pair.errors[1] > 5 * pair.errors[0], "a clip that does not follow the flow"


def test_meter_names_what_does_not_fit():
    with pytest.raises(InputImageError, match=r"at least 1 apart, got \[1, 0\]"):
        WarpingErrorMeter(1, gaps=(1, 0))
    meter = WarpingErrorMeter(1)
    with pytest.raises(InputImageError, match="expected a frame of each of the 1 clips, got 2"):
        meter.add(torch.rand(3, 16, 16), torch.rand(3, 16, 16), torch.rand(3, 16, 16))
    with pytest.raises(InputImageError, match=r"clip 1, frame 1: size \(16, 15\), the input frame is"):
        meter.add(torch.rand(3, 16, 16), torch.rand(3, 16, 15))
    with pytest.raises(InputImageError, match="clip 1 has 2 frames, the input has 3"):
        clip_warping_errors(torch.rand(3, 3, 16, 16), [torch.rand(2, 3, 16, 16)])
