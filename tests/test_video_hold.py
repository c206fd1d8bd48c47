"""A stylised clip held still along optical flow (TemporalHold, hold_still) on synthetic clips with known
motion: the texture stops swimming, detail stays, nothing ghosts behind a moving object, cuts restart."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from scipy.ndimage import binary_dilation

from depthstyle.depthstyle_core.errors import OperationCancelled, SettingsError
from depthstyle.depthstyle_core.video.hold import HoldSettings, TemporalHold, hold_still
from depthstyle.depthstyle_core.video.warp_error import clip_warping_errors, mean_errors

from .motion_scenes import disc_clip, pan_clip, swimming

pytestmark = pytest.mark.usefixtures("single_thread")


def detail(frames: torch.Tensor) -> float:
    """Mean absolute Laplacian over the frames' channels: how much fine detail they hold."""
    kernel = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]).expand(3, 1, 3, 3)
    return F.conv2d(frames, kernel, groups=3).abs().mean().item()


def run(hold: TemporalHold, content: torch.Tensor, styled: torch.Tensor) -> torch.Tensor:
    """Each frame through ``hold`` in order."""
    return torch.cat([hold(content[i : i + 1], styled[i : i + 1]) for i in range(len(content))])


@pytest.mark.parametrize("motion", [(2.0, -1.0), (1.5, 0.5)], ids=["integer", "half-pixel"])
def test_hold_stops_a_swimming_texture_and_keeps_its_detail(motion):
    content = pan_clip(24, 96, 128, motion, seed=2)
    styled = swimming(content, amplitude=0.15, cell=3, seed=4)  # a texture redrawn for every frame
    held = hold_still(content, styled, settings=HoldSettings(key_interval=8))  # 2 new keyframes
    floor, per_frame, still = mean_errors(clip_warping_errors(content, [styled, held]))
    assert per_frame > 3 * floor, "the per-frame texture swims: the measure must see it"
    assert still <= 1.5 * floor, (still / floor, per_frame / floor)
    assert detail(held) >= 0.85 * detail(styled), "keyframes are resampled once: the detail stays"
    assert (held - styled).abs().mean() < 0.05, "the held clip is still the stylised one"


@pytest.mark.parametrize("key_interval", [4, 32])
def test_no_ghost_trails_behind_a_moving_disc(key_interval):
    count = 10
    content, masks = disc_clip(count, 96, 128, (30, 30), (4, 2), 18, seed=3)
    styled = swimming(0.8 * content + 0.1, amplitude=0.15, cell=3, seed=5)
    held = hold_still(content, styled, settings=HoldSettings(key_interval=key_interval))
    last = count - 1
    now = torch.from_numpy(binary_dilation(masks[last, 0].numpy(), iterations=2))
    disc_colour = styled[last][:, masks[last, 0]].mean(dim=1)
    for name, left in (
        ("just uncovered", masks[last - 1, 0] & ~now),
        ("trail", masks[:last, 0].any(0) & ~now),
    ):
        assert left.sum() > 50
        own = styled[last][:, left].mean(dim=1)
        out = held[last][:, left].mean(dim=1)
        assert (out - own).norm() <= 0.1 * (disc_colour - own).norm(), (name, out, own, disc_colour)
    background = ~torch.from_numpy(binary_dilation(masks[:, 0].any(0).numpy(), iterations=3))
    change = (held[last] - held[last - 1]).abs().mean(dim=0)[background].mean()
    swim = (styled[last] - styled[last - 1]).abs().mean(dim=0)[background].mean()
    # What changes there from frame to frame: the keyframes' cross-fade step and the frame's own 5 %.
    assert change <= (1 / key_interval + 0.1) * swim, "the still background is held still"


def test_a_scene_cut_starts_again_from_the_stylised_frame():
    first = pan_clip(5, 64, 96, (2.0, -1.0), seed=2)
    second = pan_clip(5, 64, 96, (-1.0, 1.0), seed=7)
    content = torch.cat([first, second])
    styled = swimming(content, seed=8)
    hold = TemporalHold()
    held = run(hold, content, styled)
    assert hold.cuts == [5]
    assert torch.equal(held[0], styled[0]) and torch.equal(held[5], styled[5])
    for index in (1, 4, 6, 9):
        assert (held[index] - styled[index]).abs().mean() > 0.005, f"frame {index} is held, not restarted"


def test_hold_still_stops_when_asked_between_frames():
    content = pan_clip(5, 64, 96, (1.0, 0.0), seed=2)
    done = []
    with pytest.raises(OperationCancelled, match="stopped after 2 of 5 frames"):
        hold_still(
            content,
            swimming(content),
            on_frame=lambda index, total, frame: done.append((index, total, tuple(frame.shape))),
            should_stop=lambda: len(done) >= 2,
        )
    assert done == [(1, 5, (3, 64, 96)), (2, 5, (3, 64, 96))]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("hold", 1.5, "hold must be between 0 and 1, got 1.5"),
        ("cut", -0.1, "cut must be between 0 and 1, got -0.1"),
        ("key_interval", 0, "key_interval must be at least 1 frame, got 0"),
    ],
)
def test_hold_settings_name_the_field_out_of_range(field, value, message):
    with pytest.raises(SettingsError, match=message):
        HoldSettings(**{field: value})


def test_hold_refuses_more_than_one_frame_at_a_time():
    with pytest.raises(SettingsError, match=r"one frame at a time: got input \(2, 3, 8, 8\)"):
        TemporalHold()(torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8))


def test_a_frame_of_another_size_starts_again_without_a_cut():
    small = pan_clip(3, 64, 96, (1.0, 0.0), seed=2)
    large = pan_clip(2, 80, 96, (1.0, 0.0), seed=3)
    hold = TemporalHold()
    run(hold, small, swimming(small, seed=1))
    styled = swimming(large, seed=2)
    held = run(hold, large, styled)
    assert torch.equal(held[0], styled[0]), "the new size starts from its own result"
    assert (held[1] - styled[1]).abs().mean() > 0.005, "and is held from there"
    assert hold.cuts == [] and hold.frames == 5


def test_hold_zero_gives_the_stylised_frames_unchanged():
    content = pan_clip(4, 64, 96, (1.0, 0.0), seed=2)
    styled = swimming(content, seed=3)
    assert torch.equal(hold_still(content, styled, settings=HoldSettings(hold=0.0)), styled)


def test_memory_stays_at_two_keyframes_over_a_long_clip():
    content = pan_clip(50, 64, 96, (1.0, 0.5), seed=2)
    styled = swimming(content, seed=6)
    hold = TemporalHold(HoldSettings(key_interval=4))
    most = 0
    for index in range(len(content)):
        hold(content[index : index + 1], styled[index : index + 1])
        most = max(most, len(hold._keys))
        assert all(key.age < 2 * 4 for key in hold._keys), "no keyframe is older than twice the interval"
    assert most == 2 and len(hold._keys) <= 2
    assert hold.cuts == [] and hold.frames == 50


def test_depth_keeps_what_was_behind_a_moving_disc_from_being_drawn_from_the_disc():
    """With the colour check off, the flows alone leave part of the disc behind it; depth maps (the disc
    near, the wall far) show that what is seen there now is not what was seen before, and stop it."""
    count = 10
    content, masks = disc_clip(count, 96, 128, (30, 30), (4, 2), 18, seed=3)
    styled = swimming(0.8 * content + 0.1, amplitude=0.15, cell=3, seed=5)
    depth = 0.2 + 0.8 * masks.float()
    no_colour_check = HoldSettings(key_interval=32, colour_tolerance=1.0)
    last = count - 1
    trail = masks[:last, 0].any(0) & ~torch.from_numpy(binary_dilation(masks[last, 0].numpy(), iterations=2))
    disc_colour = styled[last][:, masks[last, 0]].mean(dim=1)
    own = styled[last][:, trail].mean(dim=1)

    def ghost(held: torch.Tensor) -> float:
        return float((held[last][:, trail].mean(dim=1) - own).norm() / (disc_colour - own).norm())

    without_depth = ghost(hold_still(content, styled, settings=no_colour_check))
    with_depth = ghost(hold_still(content, styled, depth, settings=no_colour_check))
    assert without_depth > 0.15, "the test can fail: flows alone leave a trail"
    assert with_depth <= 0.1, (with_depth, without_depth)
