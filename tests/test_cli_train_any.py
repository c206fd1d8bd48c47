"""``depthstyle train-any`` through the real entry point, then its model in ``stylize --any-model`` and in
``compare`` beside the built-in network, with a painting folder. Tiny random VGG-16 and Depth Anything
in a model folder; the real built-in weights."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from depthstyle.cli import main
from depthstyle.depthstyle_core.any_style.model_file import load_any_style_model
from depthstyle.depthstyle_core.checkpoint import read_safetensors_metadata
from depthstyle.depthstyle_core.images import load_image, save_image

from .factories import smooth_images, write_depth_checkpoint, write_vgg_checkpoint

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("train_any")
    write_vgg_checkpoint(root / "models" / "vgg" / "vgg16.tv_in1k.safetensors")
    write_depth_checkpoint(root / "models" / "depth" / "tiny.safetensors", seed=1)
    for index, image in enumerate(smooth_images(3, 40, 48, seed=1)):
        save_image(image, root / "photos" / f"photo{index}.png")
    texture = torch.rand(3, 3, 44, 44, generator=torch.Generator().manual_seed(5))
    for index, image in enumerate(0.5 * smooth_images(3, 44, 44, seed=2) + 0.5 * texture):
        save_image(image, root / "paintings" / f"painting{index}.png")
    return {key: root / key for key in ("models", "photos", "paintings")} | {"root": root}


def train_any_args(folders: dict[str, Path], out: Path, *options: str) -> list[str]:
    return [
        "--models-dir",
        str(folders["models"]),
        "--device",
        "cpu",
        "train-any",
        "--content-dir",
        str(folders["photos"]),
        "--style-dir",
        str(folders["paintings"]),
        "-o",
        str(out),
        "--depth-model",
        "tiny.safetensors",
        "--image-size",
        "32",
        "--load-size",
        "40",
        "--batch-size",
        "2",
        "--lr",
        "1e-3",
        *options,
    ]


def test_train_any_writes_a_model_that_stylize_and_compare_use(folders, tmp_path, capsys) -> None:
    out = folders["models"] / "any_style" / "mine.safetensors"
    assert main(train_any_args(folders, out, "--iterations", "3")) == 0
    err = capsys.readouterr().err
    assert "starting weights: builtin" in err and "3/3" in err
    assert f"any-painting model: {out} (3/3 steps); loss curve: {out.with_suffix('')}.loss.png" in err
    metadata = read_safetensors_metadata(out)
    assert metadata["architecture"] == "MicroAST" and metadata["train.complete"] == "true"
    assert json.loads(metadata["train.config"])["depth_weight"] == 5.0
    assert metadata["train.init"] == "builtin" and metadata["train.paintings"].startswith("3 images in")

    photo = folders["photos"] / "photo0.png"
    painting = folders["paintings"] / "painting1.png"
    stylize = ["--models-dir", str(folders["models"]), "stylize", str(photo), "--style", str(painting)]
    stylize += ["--depth-preserve", "0", "-o"]
    assert main([*stylize, str(tmp_path / "mine"), "--any-model", "mine.safetensors"]) == 0
    assert main([*stylize, str(tmp_path / "builtin")]) == 0
    mine = load_image(tmp_path / "mine" / "photo0_styled.png")
    assert mine.shape == (1, 3, 40, 48)
    assert float((mine - load_image(tmp_path / "builtin" / "photo0_styled.png")).abs().mean()) > 1 / 255
    assert set(load_any_style_model(out).state_dict()) == set(load_any_style_model().state_dict())

    compare = tmp_path / "compare"
    argv = ["--models-dir", str(folders["models"]), "compare", "--models", "builtin", "mine.safetensors"]
    argv += [
        "--images",
        str(photo),
        str(folders["photos"] / "photo1.png"),
        "--paintings",
        str(folders["paintings"]),
    ]
    argv += ["-o", str(compare), "--depth-model", "tiny.safetensors", "--resolution", "28"]
    assert main(argv) == 0
    lines = (compare / "table.md").read_text().splitlines()
    assert lines[0].startswith("| model | pairs | depth AbsRel ↓") and lines[0].endswith("style distance ↓ |")
    assert lines[2].startswith("| builtin | 6 | ") and lines[3].startswith("| mine | 6 | ")
    with open(compare / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    pairs = [(r["model"], Path(r["image"]).stem, Path(r["painting"]).stem) for r in rows]
    assert pairs[:4] == [
        ("builtin", "photo0", "painting0"),
        ("mine", "photo0", "painting0"),
        ("builtin", "photo0", "painting1"),
        ("mine", "photo0", "painting1"),
    ]
    assert len(pairs) == 12 and all(float(r["style_distance"]) > 0 for r in rows)
    from_cli = load_image(compare / "stylized" / "mine" / "photo0__painting1_styled.png")
    assert (from_cli - mine).abs().max() <= 1 / 255 + 1e-6  # the same pair, the same picture
    assert (compare / "photo1__painting2_compare.png").is_file()


def test_settings_that_cannot_work_are_one_error_line(folders, tmp_path, capsys) -> None:
    assert main(train_any_args(folders, tmp_path / "x", "--batch-size", "1")) == 2
    err = capsys.readouterr().err
    assert (
        "depthstyle train-any: error: the contrastive loss compares each result with the other paintings"
        in err
    )
    assert "--contrastive-weight 0" in err and "Traceback" not in err
    assert main(train_any_args(folders, tmp_path / "x", "--init", "nowhere.safetensors")) == 2
    assert "Model file not found" in capsys.readouterr().err
    argv = ["--models-dir", str(folders["models"]), "compare", "--models", "builtin"]
    photos, out = str(folders["photos"]), str(tmp_path / "c")
    assert main([*argv, "--images", photos, "-o", out, "--depth-model", "tiny.safetensors"]) == 2
    assert "depthstyle compare: error: any-painting models need paintings: give --paintings" in (
        capsys.readouterr().err
    )
    assert not list(tmp_path.iterdir())
