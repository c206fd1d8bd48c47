"""``depthstyle stylize --style``: the first command a user runs, offline on a fresh install; its options,
errors and global options on either side of the command; ``depthstyle convert`` of the authors' files."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from depthstyle.cli import main
from depthstyle.depthstyle_core.any_style.model_file import BUILTIN_WEIGHTS, load_any_style_model
from depthstyle.depthstyle_core.any_style.stylize import stylize_any
from depthstyle.depthstyle_core.checkpoint import read_safetensors
from depthstyle.depthstyle_core.depth import estimate_depth, load_depth_model
from depthstyle.depthstyle_core.images import load_image, save_image
from depthstyle.depthstyle_core.runtimes import openvino_problem

from .comfyui_server import REPO
from .factories import write_depth_checkpoint
from .style_helpers import textured_images

pytestmark = pytest.mark.usefixtures("single_thread")

PAINTING = REPO / "tests" / "data" / "any_style" / "style.png"
PUBLISHED = REPO / "tests" / "data" / "microast_published"


@pytest.fixture
def offline(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


@pytest.fixture
def photo(tmp_path):
    return save_image(textured_images(1, 45, 58, seed=2), tmp_path / "in" / "photo.png")


def styled(path) -> torch.Tensor:
    return load_image(path)


def library_result(photo_path, **settings) -> torch.Tensor:
    with torch.inference_mode():
        return stylize_any(load_any_style_model(), load_image(photo_path), load_image(PAINTING), **settings)


def close_to(a: torch.Tensor, b: torch.Tensor) -> bool:
    return (a - b).abs().max().item() <= 1 / 255 + 1e-6


def test_a_fresh_install_stylises_offline_and_says_in_one_line_why_without_depth(
    tmp_path, photo, offline, capsys
):
    out = tmp_path / "out"
    code = main(
        [
            "--models-dir",
            str(tmp_path / "empty"),
            "stylize",
            str(photo),
            "--style",
            str(PAINTING),
            "-o",
            str(out),
        ]
    )
    assert code == 0
    assert close_to(styled(out / "photo_styled.png"), library_result(photo))
    err = capsys.readouterr().err
    (line,) = [text for text in err.splitlines() if "no depth model" in text]
    assert "stylising without depth" in line and "--depth-preserve 0" in line
    assert "https://huggingface.co/depth-anything/Depth-Anything-V2-Small-hf/resolve/" in line
    assert str(tmp_path / "empty" / "depth" / "Depth-Anything-V2-Small-hf.safetensors") in line
    runtime = "torch" if openvino_problem() else "openvino"
    assert f"running on cpu ({runtime}, --device auto)" in err


def test_depth_preserve_zero_needs_no_depth_model(tmp_path, photo, offline, capsys):
    out = tmp_path / "out"
    args = ["stylize", str(photo), "--style", str(PAINTING), "-o", str(out), "--depth-preserve", "0"]
    assert main(["--models-dir", str(tmp_path / "empty"), *args]) == 0
    err = capsys.readouterr().err
    assert "no depth model" not in err and "depth model:" not in err


def test_scale_sets_the_brush_size_of_the_any_painting_network(tmp_path, photo, offline):
    out = tmp_path / "out"
    args = ["stylize", str(photo), "--style", str(PAINTING), "-o", str(out), "--depth-preserve", "0"]
    assert main(["--models-dir", str(tmp_path / "empty"), *args, "--scale", "0.5"]) == 0
    result = styled(out / "photo_styled.png")
    with torch.inference_mode():
        expected = stylize_any(load_any_style_model(), load_image(photo), load_image(PAINTING), scale=0.5)
    assert result.shape == expected.shape == (1, 3, 45, 58)
    assert (result - expected).abs().max() <= 1 / 255 + 1e-6


def test_with_a_depth_model_near_things_keep_more_of_the_photo(tmp_path, photo):
    models = tmp_path / "models"
    write_depth_checkpoint(models / "depth" / "tiny.safetensors", seed=5)
    out = tmp_path / "out"
    args = [
        "stylize",
        str(photo),
        "--style",
        str(PAINTING),
        "-o",
        str(out),
        "--depth-model",
        "tiny.safetensors",
    ]
    assert main([*args, "--models-dir", str(models), "--device", "cpu", "--strength", "0.9"]) == 0
    with torch.inference_mode():
        depth = estimate_depth(load_depth_model(models / "depth" / "tiny.safetensors"), load_image(photo))
    expected = library_result(photo, depth=depth, depth_preserve=0.5, strength=0.9)
    assert close_to(styled(out / "photo_styled.png"), expected)
    assert not close_to(expected, library_result(photo, strength=0.9)), "depth must matter here"


def test_blends_sizes_tiles_and_shared_frames_match_the_library(tmp_path, photo, offline):
    second = save_image(
        torch.rand(1, 3, 30, 20, generator=torch.Generator().manual_seed(1)), tmp_path / "p2.png"
    )
    out = tmp_path / "out"
    args = ["stylize", str(photo), "--style", str(PAINTING), str(second), "--style-weights", "3", "1"]
    args += ["-o", str(out), "--depth-preserve", "0", "--style-size", "128", "--preserve-color"]
    assert main(["--models-dir", str(tmp_path), *args]) == 0
    with torch.inference_mode():
        expected = stylize_any(
            load_any_style_model(),
            load_image(photo),
            [load_image(PAINTING), load_image(second)],
            style_weights=[3, 1],
            style_size=128,
            preserve_color=True,
        )
    assert close_to(styled(out / "photo_styled.png"), expected)

    clip = tmp_path / "clip"
    frames = textured_images(3, 40, 40, seed=9)
    for index, frame in enumerate(frames):
        save_image(frame, clip / f"f{index}.png")
    args = ["stylize", str(clip), "--style", str(PAINTING), "-o", str(tmp_path / "v"), "--frames", "shared"]
    assert main([*args, "--depth-preserve", "0", "--models-dir", str(tmp_path)]) == 0
    with torch.inference_mode():
        loaded = torch.cat([load_image(clip / f"f{index}.png") for index in range(3)])
        expected = stylize_any(load_any_style_model(), loaded, load_image(PAINTING), frames="shared")
    assert close_to(
        torch.cat([styled(tmp_path / "v" / f"f{index}_styled.png") for index in range(3)]), expected
    )


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--model", "x.safetensors"], "not allowed with argument"),
        (["--strength", "1.5"], "expected a number from 0 to 1"),
        (["--style-size", "-4"], "0 or more"),
    ],
)
def test_bad_options_exit_with_status_2(tmp_path, photo, capsys, extra, words):
    with pytest.raises(SystemExit) as exit_info:
        main(["stylize", str(photo), "--style", str(PAINTING), "-o", str(tmp_path), *extra])
    assert exit_info.value.code == 2
    assert words in capsys.readouterr().err


def test_wrong_weight_counts_missing_paintings_and_stray_options_are_errors(tmp_path, photo, offline, capsys):
    base = ["--models-dir", str(tmp_path), "stylize", str(photo), "-o", str(tmp_path / "out")]
    assert main([*base, "--style", str(PAINTING), "--style-weights", "1", "2"]) == 2
    assert "2 --style-weights for 1 paintings" in capsys.readouterr().err
    assert main([*base, "--style", str(tmp_path / "gone.jpg")]) == 2
    assert "gone.jpg" in capsys.readouterr().err
    assert main([*base, "--model", "x.safetensors", "--style-size", "256"]) == 2
    assert "--style-size work with --style only" in capsys.readouterr().err
    assert not (tmp_path / "out").exists(), "nothing written"


def test_global_options_work_after_the_command_too(tmp_path, photo, offline, capsys):
    out = tmp_path / "out"
    args = ["stylize", str(photo), "--style", str(PAINTING), "-o", str(out), "--depth-preserve", "0"]
    assert main([*args, "--device", "cpu", "--models-dir", str(tmp_path)]) == 0
    assert "--device auto" not in capsys.readouterr().err, "an explicit device is not announced"
    assert (out / "photo_styled.png").is_file()


def test_convert_turns_the_authors_four_files_into_the_shipped_file(tmp_path, capsys):
    target = tmp_path / "microast.safetensors"
    assert main(["convert", str(PUBLISHED), "-o", str(target)]) == 0
    shipped, _ = read_safetensors(BUILTIN_WEIGHTS)
    converted, metadata = read_safetensors(target)
    assert all(torch.equal(shipped[key], converted[key]) for key in shipped) and set(shipped) == set(
        converted
    )
    assert metadata["architecture"] == "MicroAST"
    assert main(["convert", str(PUBLISHED / "decoder_iter_160000.pth.tar"), "-o", str(tmp_path / "x")]) == 2
    assert "missing: content_encoder, style_encoder, modulator" in capsys.readouterr().err


def test_the_first_command_runs_in_a_fresh_process_with_no_network_and_no_cache(tmp_path, photo):
    env = {
        **os.environ,
        "HOME": str(tmp_path / "home"),
        "HF_HOME": str(tmp_path / "hf"),
        "HF_HUB_OFFLINE": "1",
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "depthstyle",
            "stylize",
            str(photo),
            "--style",
            str(PAINTING),
            "-o",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "o" / "photo_styled.png").is_file()
    assert "no depth model" in done.stderr
