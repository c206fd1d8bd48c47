"""Image conversion: channel counts, ComfyUI layout, files of every mode, bad files."""

import numpy as np
import pytest
import torch
from PIL import Image

from depthstyle.depthstyle_core.colormap import apply_colormap
from depthstyle.depthstyle_core.errors import InputImageError
from depthstyle.depthstyle_core.images import (
    bchw_to_comfy,
    comfy_to_bchw,
    load_image,
    save_image,
    to_rgb,
)


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_to_rgb_gives_three_channels_and_keeps_colour(channels):
    images = torch.rand(2, channels, 5, 7)
    rgb = to_rgb(images)
    assert rgb.shape == (2, 3, 5, 7)
    if channels < 3:
        for c in range(3):
            assert torch.equal(rgb[:, c], images[:, 0])
    else:
        assert torch.equal(rgb, images[:, :3])


def test_to_rgb_rejects_five_channels_with_the_shape_in_the_message():
    with pytest.raises(InputImageError, match=r"got 5 .*\(2, 5, 4, 4\)"):
        to_rgb(torch.rand(2, 5, 4, 4))


def test_comfy_round_trip_is_exact_and_float32():
    comfy = torch.rand(3, 9, 11, 3, dtype=torch.float64)
    bchw = comfy_to_bchw(comfy)
    assert bchw.shape == (3, 3, 9, 11) and bchw.dtype == torch.float32
    back = bchw_to_comfy(bchw)
    assert back.shape == (3, 9, 11, 3) and back.dtype == torch.float32
    assert torch.allclose(back, comfy.float())


def test_comfy_rgba_and_single_image_accepted():
    rgba = torch.rand(1, 6, 4, 4)
    assert torch.equal(comfy_to_bchw(rgba), rgba[..., :3].permute(0, 3, 1, 2))
    assert comfy_to_bchw(torch.rand(6, 4, 3)).shape == (1, 3, 6, 4)


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA", "P", "I;16"])
def test_load_image_every_mode(tmp_path, mode):
    array = (np.arange(12 * 10 * 3) % 251).astype(np.uint8).reshape(12, 10, 3)
    image = Image.fromarray(array, mode="RGB")
    if mode == "I;16":
        image = image.convert("L").convert("I;16")
    else:
        image = image.convert(mode)
    path = tmp_path / "in.png"
    image.save(path)
    loaded = load_image(path)
    assert loaded.shape == (1, 3, 12, 10)
    assert loaded.dtype == torch.float32
    assert 0.0 <= float(loaded.min()) and float(loaded.max()) <= 1.0
    if mode == "RGB":
        assert torch.allclose(loaded[0].permute(1, 2, 0) * 255, torch.from_numpy(array).float())


def test_save_then_load_is_lossless_for_png(tmp_path):
    image = torch.randint(0, 256, (1, 3, 8, 6)).float() / 255
    path = save_image(image, tmp_path / "sub" / "x.png")
    assert torch.allclose(load_image(path), image, atol=1e-6)


def test_broken_and_missing_files_are_named(tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image at all")
    with pytest.raises(InputImageError, match="broken.jpg"):
        load_image(broken)
    with pytest.raises(InputImageError, match="not found: .*missing.png"):
        load_image(tmp_path / "missing.png")


def test_colormap_ends_and_monotone_lightness():
    ramp = torch.linspace(0, 1, 101).view(1, 1, 1, 101)
    colours = apply_colormap(ramp)
    assert colours.shape == (1, 3, 1, 101)
    assert torch.allclose(colours[0, :, 0, 0], torch.tensor([0, 0, 4]) / 255.0)
    assert torch.allclose(colours[0, :, 0, -1], torch.tensor([252, 255, 164]) / 255.0)
    luma = (colours[0, :, 0] * torch.tensor([0.299, 0.587, 0.114]).view(3, 1)).sum(0)
    assert bool((luma[1:] >= luma[:-1] - 1e-6).all())
