"""``depthstyle train`` on the console: speed and time left of this run only, unreadable photos named."""

import json

import pytest
import torch

from depthstyle.cli import main
from depthstyle.cli.progress import RunSpeed, progress_line
from depthstyle.depthstyle_core.images import save_image

from .factories import write_vgg_checkpoint


def test_a_resumed_run_reports_the_speed_of_its_own_steps():
    ticks = iter([5000.0, 5002.0, 5006.0])
    speed = RunSpeed(clock=lambda: next(ticks))
    assert speed(1001) is None  # resumed at step 1000: the first step only starts the clock
    assert speed(1002) == pytest.approx(0.5)
    assert speed(1004) == pytest.approx(0.5)  # 3 steps in 6 s, not 1004 steps in 6 s
    line = progress_line(1004, 1604, speed=0.5, details="style 1.25")
    assert line.endswith("1004/1604 0.50 it/s, 20.0 min left style 1.25")
    assert "-- it/s" in progress_line(1001, 1604, speed=None)


def test_unreadable_photos_are_named_on_the_console_and_in_the_log(tmp_path, capsys):
    models = tmp_path / "models"
    write_vgg_checkpoint(models / "vgg" / "vgg16.tv_in1k.safetensors")
    photos = tmp_path / "photos"
    for index in range(2):
        save_image(torch.rand(1, 3, 36, 40), photos / f"good{index}.png")
    for name in ("broken1.jpg", "broken2.png"):
        (photos / name).write_bytes(b"not an image")
    out = tmp_path / "mine.safetensors"
    arguments = ["--models-dir", str(models), "train", "--style", str(photos / "good0.png")]
    arguments += ["--content-dir", str(photos), "-o", str(out), "--depth-weight", "0", "--batch-size", "2"]
    arguments += ["--image-size", "32", "--style-size", "32", "--iterations", "2", "--checkpoint-every", "1"]
    assert main(arguments) == 0
    err = capsys.readouterr().err
    named = f"2 unreadable content files: {photos / 'broken1.jpg'}, {photos / 'broken2.png'}"
    assert f"\nDepthStyle training: skipping {named}" in err  # on its own line, as soon as found
    assert f"skipped {named} (see {tmp_path / 'mine.log.json'})" in err
    listed = json.loads((tmp_path / "mine.log.json").read_text())["info"]["unreadable_files"]
    assert listed == {"count": 2, "first": [str(photos / "broken1.jpg"), str(photos / "broken2.png")]}
