"""Command-line options: masks, shared frames, brush size, depth formats, skipped files, exit statuses."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from depthstyle.cli import main
from depthstyle.depthstyle_core.depth import estimate_depth, load_depth_model
from depthstyle.depthstyle_core.images import load_image, save_image
from depthstyle.depthstyle_core.masks import depth_to_mask
from depthstyle.depthstyle_core.models.transformer_net import TransformerNet
from depthstyle.depthstyle_core.style_model import save_style_model
from depthstyle.depthstyle_core.stylize import stylize

from .factories import write_depth_checkpoint
from .style_helpers import lively_net, textured_images

pytestmark = pytest.mark.usefixtures("single_thread")

DEPTH_MODEL = "tiny.safetensors"


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    write_depth_checkpoint(folder / "depth" / DEPTH_MODEL, seed=4)
    save_style_model(folder / "styles" / "lively.safetensors", lively_net(seed=1))
    return folder


@pytest.fixture(scope="module")
def net(models) -> TransformerNet:
    from depthstyle.depthstyle_core.style_model import load_style_model

    return load_style_model(models / "styles" / "lively.safetensors")[0]


def photo_file(path, height=40, width=52, seed=0):
    return save_image(textured_images(1, height, width, seed=seed), path)


def stylize_cli(models, *args) -> int:
    return main(["--models-dir", str(models), "stylize", *map(str, args), "--model", "lively.safetensors"])


def pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB")).astype(np.int16)


# --- depth --format ---------------------------------------------------------------------------------


def test_depth_formats_keep_the_precision_they_promise(tmp_path, models):
    photo = photo_file(tmp_path / "in" / "p.png")
    estimator = load_depth_model(models / "depth" / DEPTH_MODEL)
    with torch.inference_mode():
        expected = estimate_depth(estimator, load_image(photo), resolution=28)[0, 0]
    for fmt in ("png", "png16", "npy"):
        code = main(
            ["--models-dir", str(models), "depth", str(photo), "-o", str(tmp_path / fmt)]
            + ["--model", DEPTH_MODEL, "--resolution", "28", "--format", fmt]
        )
        assert code == 0
    array = np.load(tmp_path / "npy" / "p_depth.npy")
    assert array.dtype == np.float32 and array.shape == (40, 52)
    np.testing.assert_array_equal(array, expected.numpy())
    deep = Image.open(tmp_path / "png16" / "p_depth.png")
    assert deep.mode.startswith("I") and deep.size == (52, 40)
    levels = np.asarray(deep).astype(np.float64)
    assert levels.max() == 65535 and levels.min() == 0
    np.testing.assert_allclose(levels / 65535, expected.numpy(), atol=0.5 / 65535 + 1e-7)
    assert len(np.unique(levels)) > 256, "16 bits must hold more than 256 levels"
    eight = pixels(tmp_path / "png" / "p_depth.png")
    np.testing.assert_allclose(eight[..., 0] / 255, expected.numpy(), atol=0.5 / 255 + 1e-6)


# --- unreadable files are skipped -------------------------------------------------------------------


def broken_folder(tmp_path):
    folder = tmp_path / "photos"
    photo_file(folder / "a.png", seed=1)
    (folder / "b.png").write_bytes(b"\x89PNG broken")
    photo_file(folder / "c.png", seed=2)
    return folder


def test_depth_skips_an_unreadable_file_writes_the_others_and_exits_3(tmp_path, models, capsys):
    folder = broken_folder(tmp_path)
    out = tmp_path / "out"
    code = main(
        ["--models-dir", str(models), "depth", str(folder), "-o", str(out), "--model", DEPTH_MODEL]
        + ["--resolution", "28"]
    )
    assert code == 3
    assert sorted(p.name for p in out.iterdir()) == ["a_depth.png", "c_depth.png"]
    err = capsys.readouterr().err
    assert "[2/3] skipped: cannot read" in err and "b.png" in err
    assert "depthstyle depth: skipped 1 of 3 inputs that could not be read" in err
    assert "the others were written (exit status 3)" in err


def test_stylize_skips_an_unreadable_file_writes_the_others_and_exits_3(tmp_path, models, capsys):
    out = tmp_path / "out"
    assert stylize_cli(models, broken_folder(tmp_path), "-o", out) == 3
    assert sorted(p.name for p in out.iterdir()) == ["a_styled.png", "c_styled.png"]
    assert "skipped 1 of 3" in capsys.readouterr().err


# --- masks ------------------------------------------------------------------------------------------


def test_depth_mask_keeps_the_photo_exactly_where_the_mask_is_zero(tmp_path, models, net):
    photo = photo_file(tmp_path / "p.png", 48, 56, seed=3)
    out = tmp_path / "out"
    code = stylize_cli(models, photo, "-o", out, "--depth-mask", "0.5:0:0.1", "--depth-model", DEPTH_MODEL)
    assert code == 0
    estimator = load_depth_model(models / "depth" / DEPTH_MODEL)
    with torch.inference_mode():
        mask = depth_to_mask(estimate_depth(estimator, load_image(photo)), near=0.5, far=0.0, softness=0.1)
        full = stylize(net, load_image(photo))
    keep, style = (mask[0, 0] == 0).numpy(), (mask[0, 0] == 1).numpy()
    assert keep.mean() > 0.1 and style.mean() > 0.1, "the tiny depth model must give both regions"
    result, original = pixels(out / "p_styled.png"), pixels(photo)
    assert np.array_equal(result[keep], original[keep])
    expected = np.round(full[0].permute(1, 2, 0).numpy() * 255).astype(np.int16)
    assert np.abs(result[style] - expected[style]).max() <= 1
    assert np.abs(result[style] - original[style]).mean() > 5


def test_mask_file_any_size_with_invert_and_feather(tmp_path, models):
    photo = photo_file(tmp_path / "p.png", 40, 52)
    mask = np.zeros((10, 13), dtype=np.uint8)
    mask[:, 7:] = 255  # the right part, at a quarter of the size
    Image.fromarray(mask).save(tmp_path / "m.png")
    assert stylize_cli(models, photo, "-o", tmp_path / "plain", "--mask", tmp_path / "m.png") == 0
    plain, original = pixels(tmp_path / "plain" / "p_styled.png"), pixels(photo)
    assert np.array_equal(plain[:, :24], original[:, :24])
    assert np.abs(plain[:, 32:] - original[:, 32:]).mean() > 5
    inverted_args = ["--mask", tmp_path / "m.png", "--invert-mask"]
    assert stylize_cli(models, photo, "-o", tmp_path / "inv", *inverted_args) == 0
    inverted = pixels(tmp_path / "inv" / "p_styled.png")
    assert np.array_equal(inverted[:, 32:], original[:, 32:]) and not np.array_equal(inverted, original)
    args = ["--mask", tmp_path / "m.png", "--mask-feather", "6"]
    assert stylize_cli(models, photo, "-o", tmp_path / "soft", *args) == 0
    soft = pixels(tmp_path / "soft" / "p_styled.png")
    assert np.array_equal(soft[:, :16], original[:, :16]), "6 px feather around the edge at column 28"
    assert not np.array_equal(soft[:, :24], original[:, :24])


# --- frames and scale -------------------------------------------------------------------------------


def test_frames_shared_stylises_a_folder_of_frames_as_one_batch(tmp_path, models, net):
    frames = textured_images(5, 32, 40, seed=9)
    for index, frame in enumerate(frames):
        save_image(frame, tmp_path / "clip" / f"frame_{index:03d}.png")
    assert stylize_cli(models, tmp_path / "clip", "-o", tmp_path / "out", "--frames", "shared") == 0
    loaded = torch.cat([load_image(tmp_path / "clip" / f"frame_{i:03d}.png") for i in range(5)])
    with torch.inference_mode():
        expected = stylize(net, loaded, frames="shared")
        independent = stylize(net, loaded)
    written = torch.cat([load_image(tmp_path / "out" / f"frame_{i:03d}_styled.png") for i in range(5)])
    assert (written - expected).abs().max() <= 0.5 / 255 + 1e-6
    assert (written - independent).abs().mean() > 0.01


def test_frames_shared_refuses_frames_of_different_sizes(tmp_path, models, capsys):
    photo_file(tmp_path / "clip" / "a.png", 32, 40)
    photo_file(tmp_path / "clip" / "b.png", 32, 44)
    assert stylize_cli(models, tmp_path / "clip", "-o", tmp_path / "out", "--frames", "shared") == 2
    err = capsys.readouterr().err
    assert "--frames shared needs frames of one size" in err and "40x32" in err and "44x32" in err
    assert not (tmp_path / "out").exists()


def test_scale_keeps_the_output_size(tmp_path, models):
    photo = photo_file(tmp_path / "p.png", 37, 53)
    assert stylize_cli(models, photo, "-o", tmp_path / "out", "--scale", "0.5") == 0
    assert load_image(tmp_path / "out" / "p_styled.png").shape == (1, 3, 37, 53)


# --- errors -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "words"),
    [
        (["--depth-mask", "0.3:0.6"], ["far (0.6) is greater than near (0.3)", "swap them"]),
        (["--depth-mask", "near"], ["expected NEAR:FAR or NEAR:FAR:SOFTNESS", "'near'"]),
        (["--depth-mask", "1:0:0:1"], ["expected NEAR:FAR or NEAR:FAR:SOFTNESS"]),
        (["--depth-mask", "1:0.5", "--mask", "m.png"], ["--mask: not allowed with argument --depth-mask"]),
        (["--mask-feather", "-3"], ["expected a whole number of pixels, 0 or more"]),
        (["--scale", "0"], ["--scale: expected a number above 0 and at most 4"]),
        (["--strength", "1.5"], ["--strength: expected a number from 0 to 1"]),
        (["--frames", "video"], ["--frames: invalid choice: 'video'"]),
    ],
)
def test_bad_options_are_usage_errors_that_name_the_problem(tmp_path, models, capsys, options, words):
    with pytest.raises(SystemExit) as info:
        stylize_cli(models, tmp_path / "p.png", "-o", tmp_path / "out", *options)
    assert info.value.code == 2
    err = capsys.readouterr().err
    for word in words:
        assert word in err, err


def test_errors_found_while_running_exit_2_with_a_message(tmp_path, models, capsys):
    photo = photo_file(tmp_path / "p.png")
    assert stylize_cli(models, photo, "-o", tmp_path / "out", "--mask", tmp_path / "missing.png") == 2
    assert "depthstyle stylize: error: mask file not found:" in capsys.readouterr().err
    no_depth = ["--depth-mask", "1:0.5", "--depth-model", "none"]
    assert stylize_cli(models, photo, "-o", tmp_path / "out", *no_depth) == 2
    assert "--depth-mask needs a depth model" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
