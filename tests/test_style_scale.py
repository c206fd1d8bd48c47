"""stylize(scale=...): the brush size. The network sees the resized image; the result has the input's size."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from depthstyle.depthstyle_core.stylize import stylize

from .style_helpers import lively_net, textured_images

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def net():
    return lively_net(seed=11)


def test_scale_half_equals_stylising_the_half_size_image_and_upsampling_it(net):
    """The documented filters: antialiased bilinear down, bicubic up, clamped."""
    photo = textured_images(1, 512, 512, seed=12)
    small = F.interpolate(photo, size=(256, 256), mode="bilinear", align_corners=False, antialias=True)
    expected = F.interpolate(stylize(net, small), size=(512, 512), mode="bicubic", align_corners=False)
    out = stylize(net, photo, scale=0.5)
    assert out.shape == photo.shape
    torch.testing.assert_close(out, expected.clamp(0, 1), atol=1e-6, rtol=0)
    full = stylize(net, photo)
    assert (out - full).abs().mean() > 0.02, "a different brush size must paint differently"


@pytest.mark.parametrize(
    ("size", "scale"), [((37, 53), 0.5), ((1, 1), 0.3), ((9, 5), 2.0), ((64, 33), 0.37), ((20, 20), 1.0)]
)
def test_the_output_always_has_the_input_size(net, size, scale):
    images = torch.rand(2, 3, *size)
    out = stylize(net, images, scale=scale)
    assert out.shape == (2, 3, *size)
    assert 0 <= float(out.min()) and float(out.max()) <= 1


def test_scale_one_is_the_plain_run_and_scale_works_with_tiles_and_strength(net):
    images = textured_images(2, 90, 20, seed=13)
    assert torch.equal(stylize(net, images, scale=1.0), stylize(net, images))
    half = stylize(net, images, scale=2.0, strength=0.5)
    full = stylize(net, images, scale=2.0)
    torch.testing.assert_close(half, 0.5 * images + 0.5 * full, atol=1e-6, rtol=0)
    tiled = stylize(net, images, scale=2.0, tile_size=152, tile_overlap=120)  # 180 x 40 at work size: 2 tiles
    assert (tiled - full).abs().max() <= 2 / 255


@pytest.mark.parametrize("scale", [0, -1, 4.5])
def test_scale_out_of_range_is_named(net, scale):
    with pytest.raises(ValueError, match="scale must be above 0 and at most 4"):
        stylize(net, torch.rand(1, 3, 8, 8), scale=scale)
