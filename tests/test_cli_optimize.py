"""``depthstyle optimize``: files and folders, several styles, sizes, Ctrl+C, error messages."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import torch

from depthstyle.cli import main
from depthstyle.depthstyle_core.images import load_image, save_image

from .factories import write_depth_checkpoint, write_vgg_checkpoint


def models_with_tiny_networks(root):
    models = root / "models"
    write_vgg_checkpoint(models / "vgg" / "vgg16.tv_in1k.safetensors")
    write_depth_checkpoint(models / "depth" / "tiny.safetensors", seed=2)
    return models


def test_optimize_writes_one_picture_per_photo_at_the_requested_size(tmp_path, capsys):
    models = models_with_tiny_networks(tmp_path)
    photos = tmp_path / "photos"
    save_image(torch.rand(1, 3, 48, 64), photos / "wide.png")
    save_image(torch.rand(1, 3, 70, 35), photos / "nested" / "tall.jpg")
    monet = save_image(torch.rand(1, 3, 40, 40), tmp_path / "monet.png")
    hokusai = save_image(torch.rand(1, 3, 30, 50), tmp_path / "hokusai.png")
    out = tmp_path / "out"
    args = ["--models-dir", str(models), "optimize", str(photos), "--style", str(monet), str(hokusai)]
    args += ["--style-weights", "3", "1", "-o", str(out), "--size", "80", "--steps", "2"]
    code = main([*args, "--depth-model", "tiny.safetensors"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert load_image(out / "wide_optimized.png").shape == (1, 3, 60, 80)
    assert load_image(out / "tall_optimized.png").shape == (1, 3, 80, 40)
    assert "[2/2]" in err and "4/4" in err and "tall_optimized.png" in err
    assert "depth model: tiny.safetensors" in err


def test_photo_size_and_no_depth_model_needed_without_the_depth_loss(tmp_path):
    models = tmp_path / "models"
    write_vgg_checkpoint(models / "vgg" / "vgg16.tv_in1k.safetensors")
    photo = save_image(torch.rand(1, 3, 37, 51), tmp_path / "p.png")
    style = save_image(torch.rand(1, 3, 30, 30), tmp_path / "s.png")
    args = ["--models-dir", str(models), "optimize", str(photo), "--style", str(style), "-o", str(tmp_path)]
    assert main([*args, "--size", "0", "--steps", "1", "--depth-weight", "0"]) == 0
    assert load_image(tmp_path / "p_optimized.png").shape == (1, 3, 37, 51)


def test_bad_settings_and_files_are_clean_errors(tmp_path, capsys):
    photo = save_image(torch.rand(1, 3, 20, 20), tmp_path / "p.png")
    style = save_image(torch.rand(1, 3, 20, 20), tmp_path / "s.png")
    base = ["--models-dir", str(tmp_path / "models"), "optimize", str(photo), "-o", str(tmp_path / "o")]
    assert main([*base, "--style", str(style), "--style-weights", "1", "2"]) == 2
    assert (
        "depthstyle optimize: error: 2 style weights were given for 1 style images" in capsys.readouterr().err
    )
    assert main([*base, "--style", str(style), "--steps", "0"]) == 2
    assert "steps must be a whole number >= 1" in capsys.readouterr().err
    assert main([*base, "--style", str(tmp_path / "missing.png")]) == 2
    assert f"image file not found: {tmp_path / 'missing.png'}" in capsys.readouterr().err


def test_ctrl_c_writes_the_picture_so_far_and_exits_130(tmp_path):
    models = models_with_tiny_networks(tmp_path)
    photo = save_image(torch.rand(1, 3, 40, 60), tmp_path / "photo.png")
    style = save_image(torch.rand(1, 3, 32, 32), tmp_path / "style.png")
    out = tmp_path / "out"
    command = [sys.executable, "-m", "depthstyle", "--models-dir", str(models), "optimize", str(photo)]
    command += [
        "--style",
        str(style),
        "-o",
        str(out),
        "--size",
        "64",
        "--steps",
        "100000",
        "--depth-weight",
        "0",
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env)
    seen = ""
    deadline = time.monotonic() + 120
    while "it/s" not in seen and time.monotonic() < deadline:
        seen += process.stderr.read(1)
    process.send_signal(signal.SIGINT)
    _, rest = process.communicate(timeout=60)
    assert process.returncode == 130, seen + rest
    assert "interrupted after" in rest and "wrote the picture as it is so far" in rest
    written = load_image(out / "photo_optimized.png")
    assert written.shape == (1, 3, 43, 64)


def test_a_mask_file_keeps_the_photo_and_a_broken_photo_is_skipped_with_status_3(tmp_path, capsys):
    models = tmp_path / "models"
    write_vgg_checkpoint(models / "vgg" / "vgg16.tv_in1k.safetensors")
    photos = tmp_path / "photos"
    photo = save_image(torch.rand(1, 3, 40, 60), photos / "a.png")
    (photos / "broken.png").write_bytes(b"not a png")
    style = save_image(torch.rand(1, 3, 32, 32), tmp_path / "s.png")
    mask = torch.zeros(1, 3, 40, 60)
    mask[..., 30:] = 1.0
    mask_file = save_image(mask, tmp_path / "right_half.png")
    out = tmp_path / "out"
    args = ["--models-dir", str(models), "optimize", str(photos), "--style", str(style), "-o", str(out)]
    code = main([*args, "--size", "0", "--steps", "2", "--depth-weight", "0", "--mask", str(mask_file)])
    err = capsys.readouterr().err
    assert code == 3, err
    assert "skipped" in err and "broken.png" in err
    result = load_image(out / "a_optimized.png")
    assert torch.equal(result[..., :30], load_image(photo)[..., :30])
    assert float((result[..., 30:] - load_image(photo)[..., 30:]).abs().mean()) > 0.01


def test_depth_maps_from_elsewhere_set_the_depth_target(tmp_path, capsys):
    models = models_with_tiny_networks(tmp_path)
    photo = save_image(torch.rand(1, 3, 48, 64), tmp_path / "photos" / "p.png")
    style = save_image(torch.rand(1, 3, 40, 40), tmp_path / "s.png")
    near_left = torch.linspace(1, 0, 64).view(1, 1, 1, 64).expand(1, 3, 48, 64)
    save_image(near_left, tmp_path / "maps" / "p_depth.png")
    base = ["--models-dir", str(models), "optimize", str(photo), "--style", str(style), "--size", "64"]
    base += ["--steps", "3", "--depth-model", "tiny.safetensors"]
    assert main([*base, "-o", str(tmp_path / "model")]) == 0
    assert main([*base, "--depth-map", str(tmp_path / "maps"), "-o", str(tmp_path / "map")]) == 0
    from_model, from_map = (
        load_image(tmp_path / "model" / "p_optimized.png"),
        load_image(tmp_path / "map" / "p_optimized.png"),
    )
    assert (from_model - from_map).abs().max() > 1 / 255, "the map, not the photo's depth, is the target"
    empty = tmp_path / "no_maps"
    empty.mkdir()
    assert main([*base, "--depth-map", str(empty), "-o", str(tmp_path / "none")]) == 2
    assert "no depth map in" in capsys.readouterr().err and not (tmp_path / "none").exists()
