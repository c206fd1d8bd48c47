"""Depth maps made elsewhere: depth_from_map, `stylize --depth-map`, and 16-bit greyscale files."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from depthstyle.cli import main
from depthstyle.depthstyle_core.any_style.model_file import load_any_style_model
from depthstyle.depthstyle_core.any_style.stylize import stylize_any
from depthstyle.depthstyle_core.depth import depth_to_rgb, estimate_depth, load_depth_model
from depthstyle.depthstyle_core.depth_maps import depth_from_map
from depthstyle.depthstyle_core.errors import InputImageError
from depthstyle.depthstyle_core.images import load_image, save_image

from .comfyui_server import REPO
from .factories import write_depth_checkpoint
from .style_helpers import textured_images

pytestmark = pytest.mark.usefixtures("single_thread")

PAINTING = REPO / "tests" / "data" / "any_style" / "style.png"


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    write_depth_checkpoint(folder / "depth" / "tiny.safetensors", seed=4)
    return folder


@pytest.fixture(scope="module")
def estimator(models):
    return load_depth_model(models / "depth" / "tiny.safetensors")


@pytest.mark.parametrize("normalization", ["per_image", "per_batch"])
def test_our_own_depth_fed_back_as_an_image_is_the_same_depth(estimator, normalization):
    photos = textured_images(3, 37, 50, seed=3)
    with torch.inference_mode():
        depth = estimate_depth(estimator, photos, normalization=normalization)
    again = depth_from_map(depth_to_rgb(depth), 3, 37, 50, normalization)
    assert torch.equal(again, depth)


def test_one_map_serves_every_image_and_other_sizes_are_resized():
    gradient = torch.linspace(0, 1, 20).view(1, 1, 1, 20).expand(1, 3, 16, 20)  # near on the right
    depth = depth_from_map(gradient, 2, 33, 41)
    assert depth.shape == (2, 1, 33, 41) and torch.equal(depth[0], depth[1])
    assert depth[0, 0, :, -1].min() > 1 - 1e-6 and depth[0, 0, :, 0].max() < 1e-6, "normalised, near = 1"
    assert bool((depth[0, 0, 5].diff() >= 0).all()), "the order of near and far is kept"
    colour = torch.stack([gradient[:, 0], 1 - gradient[:, 0], gradient[:, 0]], dim=1)  # a colour picture
    assert depth_from_map(colour, 1, 16, 20).shape == (1, 1, 16, 20)


@pytest.mark.parametrize(
    ("maps", "words"),
    [
        (torch.rand(2, 3, 8, 8), "got 2 depth maps for 3 images"),
        (torch.rand(3, 8, 8), "a depth map must be an image [N,C,H,W]"),
        (torch.full((1, 3, 8, 8), float("nan")), "NaN or infinite"),
    ],
)
def test_maps_that_cannot_serve_are_named(maps, words):
    with pytest.raises(InputImageError, match=words.replace("[", r"\[").replace("]", r"\]")):
        depth_from_map(maps, 3, 8, 8)


def test_a_16_bit_greyscale_png_keeps_its_values(tmp_path):
    levels = np.linspace(0, 65535, 64 * 48).reshape(48, 64).round().astype(np.uint16)
    Image.fromarray(levels).save(tmp_path / "depth16.png")
    image = load_image(tmp_path / "depth16.png")
    assert image.shape == (1, 3, 48, 64)
    expected = torch.from_numpy(levels.astype(np.float32) / 65535.0)
    assert (image[0, 0] - expected).abs().max() < 1e-6 and torch.equal(image[0, 0], image[0, 2])


def test_stylize_with_depth_maps_from_the_depth_command_equals_the_depth_model(tmp_path, models, estimator):
    photos = [save_image(textured_images(1, 45, 58, seed=s), tmp_path / "in" / f"p{s}.png") for s in (1, 2)]
    argv = ["--models-dir", str(models)]
    assert main([*argv, "depth", str(tmp_path / "in"), "--model", "tiny.safetensors", "--format", "png16",
                 "-o", str(tmp_path / "maps")]) == 0  # fmt: skip
    common = [*argv, "stylize", str(tmp_path / "in"), "--style", str(PAINTING)]
    assert main([*common, "--depth-map", str(tmp_path / "maps"), "-o", str(tmp_path / "with_maps")]) == 0
    for photo in photos:
        with torch.inference_mode():
            image = load_image(photo)
            expected = stylize_any(
                load_any_style_model(), image, load_image(PAINTING),
                depth=estimate_depth(estimator, image), depth_preserve=0.5,
            )  # fmt: skip
            plain = stylize_any(load_any_style_model(), image, load_image(PAINTING))
        result = load_image(tmp_path / "with_maps" / f"{photo.stem}_styled.png")
        assert (result - expected).abs().max() <= 1 / 255 + 1e-6
        assert (result - plain).abs().max() > 0.05, "the depth map held the near parts back"


def test_one_depth_map_file_serves_every_photo_and_a_missing_map_stops_before_any_work(tmp_path, capsys):
    for s in (1, 2):
        save_image(textured_images(1, 30, 40, seed=s), tmp_path / "in" / f"p{s}.png")
    near_left = torch.linspace(1, 0, 40).view(1, 1, 1, 40).expand(1, 3, 30, 40)
    save_image(near_left, tmp_path / "one.png")
    common = ["stylize", str(tmp_path / "in"), "--style", str(PAINTING), "--depth-preserve", "1"]
    assert main([*common, "--depth-map", str(tmp_path / "one.png"), "-o", str(tmp_path / "out")]) == 0
    for s in (1, 2):
        photo = load_image(tmp_path / "in" / f"p{s}.png")
        result = load_image(tmp_path / "out" / f"p{s}_styled.png")
        assert (result - photo)[..., :3].abs().max() <= 1 / 255 + 1e-6, "the nearest column is the photo"
        assert (result - photo)[..., -3:].abs().mean() > 0.05, "the farthest is painted"
    (tmp_path / "maps").mkdir()
    save_image(near_left, tmp_path / "maps" / "p1_depth.png")
    assert main([*common, "--depth-map", str(tmp_path / "maps"), "-o", str(tmp_path / "none")]) == 2
    assert "no depth map in" in capsys.readouterr().err and not (tmp_path / "none").exists()
