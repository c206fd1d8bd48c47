"""Masks: depth bands, fitting a mask to a batch, per-pixel strength in stylize(), mask files."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from depthstyle.depthstyle_core.errors import MaskError
from depthstyle.depthstyle_core.masks import apply_strength, depth_to_mask, fit_mask, load_mask
from depthstyle.depthstyle_core.stylize import stylize

from .style_helpers import lively_net, textured_images

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def net():
    return lively_net(seed=3)


def ramp(steps: int = 101) -> torch.Tensor:
    """Depth 0, 0.01, ..., 1 along the width, as a 3-channel depth image [1,3,1,steps]."""
    return (torch.arange(steps) / (steps - 1)).view(1, 1, 1, steps).expand(1, 3, 1, steps)


def at(mask: torch.Tensor, depth: float, steps: int = 101) -> float:
    return float(mask[0, 0, 0, round(depth * (steps - 1))])


# --- depth_to_mask ----------------------------------------------------------------------------------


def test_depth_band_has_the_documented_values_on_a_ramp():
    """The module docstring's example: near=1, far=0.5, softness=0.2."""
    mask = depth_to_mask(ramp(), near=1.0, far=0.5, softness=0.2)
    assert mask.shape == (1, 1, 1, 101) and mask.dtype == torch.float32
    for depth, expected in [(1.0, 1), (0.75, 1), (0.5, 1), (0.45, 0.75), (0.4, 0.5), (0.35, 0.25), (0.3, 0)]:
        assert at(mask, depth) == pytest.approx(expected, abs=1e-5), depth
    assert float(mask[..., :30].max()) == 0.0
    inverted = depth_to_mask(ramp(), near=1.0, far=0.5, softness=0.2, invert=True)
    torch.testing.assert_close(inverted, 1 - mask)


def test_a_middle_band_falls_off_on_both_sides_and_softness_zero_is_a_hard_edge():
    mask = depth_to_mask(ramp(), near=0.6, far=0.4, softness=0.1)
    for depth, expected in [(0.25, 0), (0.35, 0.5), (0.4, 1), (0.6, 1), (0.65, 0.5), (0.7, 0), (1.0, 0)]:
        assert at(mask, depth) == pytest.approx(expected, abs=1e-5), depth
    hard = depth_to_mask(ramp(), near=0.6, far=0.4, softness=0)
    assert set(hard.unique().tolist()) == {0.0, 1.0}
    assert at(hard, 0.39) == 0 and at(hard, 0.4) == 1 and at(hard, 0.6) == 1 and at(hard, 0.61) == 0


def test_feather_blurs_a_hard_edge_symmetrically_and_keeps_flat_areas():
    depth = torch.zeros(1, 1, 9, 40)
    depth[..., 20:] = 1.0
    sharp = depth_to_mask(depth, near=1, far=0.5, softness=0)
    soft = depth_to_mask(depth, near=1, far=0.5, softness=0, feather=4)
    row = soft[0, 0, 4]
    assert torch.equal(row[:16], torch.zeros(16)) and torch.equal(row[24:], torch.ones(16))
    assert 0 < float(row[19]) < 0.5 < float(row[20]) < 1
    torch.testing.assert_close(row[16:20], 1 - row[20:24].flip(0))  # symmetric about the edge
    assert torch.equal(soft[0, 0, 0], soft[0, 0, 8]), "edge rows must not darken (replicated padding)"
    assert not torch.equal(soft, sharp)


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        ({"near": 0.3, "far": 0.6}, ["far (0.6) is greater than near (0.3)", "swap"]),
        ({"near": 1.5}, ["near must be between 0 and 1"]),
        ({"softness": -0.1}, ["softness must be between 0 and 1"]),
        ({"feather": -2}, ["feather must be 0 or more"]),
    ],
)
def test_bad_settings_are_named(settings, words):
    with pytest.raises(MaskError) as info:
        depth_to_mask(ramp(), **settings)
    for word in words:
        assert word in str(info.value)


# --- fit_mask ---------------------------------------------------------------------------------------


def test_one_mask_applies_to_every_image_and_one_per_image_is_kept():
    single = torch.rand(1, 6, 5)
    fitted = fit_mask(single, 3, 6, 5)
    assert fitted.shape == (3, 1, 6, 5)
    assert all(torch.equal(fitted[i, 0], single[0]) for i in range(3))
    assert torch.equal(fit_mask(single[0], 3, 6, 5), fitted), "[H,W] is one mask too"
    per_image = torch.rand(3, 6, 5)
    assert torch.equal(fit_mask(per_image, 3, 6, 5)[:, 0], per_image)
    assert torch.equal(fit_mask(per_image[:, None], 3, 6, 5)[:, 0], per_image)


@pytest.mark.parametrize(
    ("mask", "words"),
    [
        (torch.rand(2, 6, 5), ["got 2 masks for 3 images", "one mask for all images or one mask per image"]),
        (torch.rand(4, 1, 6, 5), ["got 4 masks for 3 images"]),
        (torch.rand(3, 3, 6, 5), ["[H,W], [N,H,W] or [N,1,H,W]", "(3, 3, 6, 5)"]),
        (torch.rand(5), ["[H,W], [N,H,W] or [N,1,H,W]"]),
    ],
)
def test_a_mask_that_does_not_fit_the_batch_is_a_clear_error(mask, words):
    with pytest.raises(MaskError) as info:
        fit_mask(mask, 3, 6, 5)
    for word in words:
        assert word in str(info.value)


def test_a_mask_of_another_size_is_resized_and_clamped():
    mask = torch.zeros(1, 4, 4)
    mask[:, :, 2:] = 2.0  # right half, above 1
    fitted = fit_mask(mask, 2, 8, 16)
    assert fitted.shape == (2, 1, 8, 16)
    assert float(fitted.max()) == 1.0 and float(fitted.min()) == 0.0
    assert float(fitted[..., :6].max()) == 0.0 and float(fitted[..., 10:].min()) == 1.0
    shrunk = fit_mask(torch.ones(1, 64, 64), 1, 7, 9)
    assert shrunk.shape == (1, 1, 7, 9) and torch.allclose(shrunk, torch.ones(1, 1, 7, 9))


# --- apply_strength and stylize(mask=...) ------------------------------------------------------------


def half_mask(height: int, width: int) -> torch.Tensor:
    mask = torch.zeros(1, height, width)
    mask[:, :, width // 2 :] = 1.0
    return mask


def test_mask_zero_returns_the_input_bit_for_bit_and_mask_one_the_full_style(net):
    images = textured_images(2, 40, 36, seed=1)
    images[0, 0, 0, 0] = 1.5  # a value outside 0..1 is kept as it is where the mask is 0
    full = stylize(net, images)
    out = stylize(net, images, mask=half_mask(40, 36))
    assert torch.equal(out[..., :18], images[..., :18])
    assert torch.equal(out[..., 18:], full[..., 18:])
    assert (out[..., 18:] - images[..., 18:]).abs().mean() > 0.05
    assert torch.equal(stylize(net, images, mask=torch.zeros(40, 36)), images)


def test_per_pixel_strength_is_strength_times_mask(net):
    images = textured_images(2, 24, 20, seed=2)
    full = stylize(net, images)
    mask = torch.rand(2, 24, 20)
    out = stylize(net, images, strength=0.6, mask=mask)
    weight = 0.6 * mask[:, None]
    torch.testing.assert_close(out, images + weight * (full - images), atol=1e-5, rtol=0)
    other = stylize(net, images, strength=0.6, mask=mask.flip(0))  # one mask per image, in order
    assert not torch.allclose(other, out)


def test_mask_works_with_preserve_color_tiles_chunks_and_a_smaller_mask(net):
    images = textured_images(3, 64, 48, seed=4)
    mask = half_mask(16, 12)  # a quarter of the size: resized
    out = stylize(net, images, mask=mask, preserve_color=True, chunk_size=2, tile_size=48, tile_overlap=8)
    # bilinear x4: the 0/1 edge between mask columns 5 and 6 spreads over columns 22..25
    assert torch.equal(out[..., :22], images[..., :22])
    assert not torch.equal(out[..., 22], images[..., 22])
    reference = stylize(net, images, preserve_color=True, tile_size=48, tile_overlap=8)
    torch.testing.assert_close(out[..., 26:], reference[..., 26:])


def test_apply_strength_keeps_the_content_wherever_the_weight_is_zero():
    content = torch.rand(2, 3, 5, 7)
    styled = torch.full_like(content, float("nan"))  # even a broken result cannot leak through
    out = apply_strength(content, styled, 1.0, torch.zeros(5, 7))
    assert torch.equal(out, content)
    assert torch.equal(apply_strength(content, torch.rand_like(content), 0.0), content)
    with pytest.raises(ValueError, match="strength"):
        apply_strength(content, content, 1.2)


def test_wrong_mask_count_in_stylize_fails_before_any_work(net):
    with pytest.raises(MaskError, match="got 2 masks for 3 images"):
        stylize(net, torch.rand(3, 3, 8, 8), mask=torch.rand(2, 8, 8))


# --- mask files -------------------------------------------------------------------------------------


def test_mask_files_keep_8_and_16_bit_precision_and_colour_is_greyed(tmp_path):
    levels = np.arange(0, 65536, 257 * 5, dtype=np.uint16).reshape(1, -1)
    Image.fromarray(levels).save(tmp_path / "deep.png")
    deep = load_mask(tmp_path / "deep.png")
    assert deep.shape == (1, 1, 1, levels.shape[1])
    torch.testing.assert_close(deep[0, 0, 0], torch.from_numpy(levels[0] / 65535.0).float())
    Image.fromarray(np.array([[0, 128, 255]], dtype=np.uint8)).save(tmp_path / "grey.png")
    torch.testing.assert_close(load_mask(tmp_path / "grey.png")[0, 0, 0], torch.tensor([0, 128 / 255, 1]))
    Image.new("RGBA", (2, 2), (255, 255, 255, 0)).save(tmp_path / "white.png")
    assert torch.equal(load_mask(tmp_path / "white.png"), torch.ones(1, 1, 2, 2)), "alpha is ignored"


def test_unreadable_mask_files_are_named(tmp_path):
    with pytest.raises(MaskError, match="mask file not found: .*nothere.png"):
        load_mask(tmp_path / "nothere.png")
    (tmp_path / "bad.png").write_bytes(b"not a picture")
    with pytest.raises(MaskError, match="cannot read the mask .*bad.png"):
        load_mask(tmp_path / "bad.png")
