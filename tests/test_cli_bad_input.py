"""Bad input on the command line: one `depthstyle CMD: error: ...` line and exit status 2, never a
traceback, and no result of a run replaced by another of the same run."""

from __future__ import annotations

import sys

import pytest
import torch

from depthstyle.cli import main
from depthstyle.cli.common import output_stems
from depthstyle.depthstyle_core.any_style.model_file import load_any_style_model
from depthstyle.depthstyle_core.any_style.stylize import stylize_any
from depthstyle.depthstyle_core.devices import available_devices
from depthstyle.depthstyle_core.images import load_image, save_image
from depthstyle.depthstyle_core.style_model import save_style_model

from .comfyui_server import REPO
from .factories import write_depth_checkpoint
from .style_helpers import lively_net, textured_images

pytestmark = pytest.mark.usefixtures("single_thread")

PAINTING = str(REPO / "tests" / "data" / "any_style" / "style.png")
ABSENT_ACCELERATOR = next(kind for kind in ("cuda", "mps", "xpu") if kind not in available_devices())


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    write_depth_checkpoint(folder / "depth" / "tiny.safetensors", seed=4)
    save_style_model(folder / "styles" / "lively.safetensors", lively_net(seed=1))
    return folder


@pytest.fixture
def twins(tmp_path):
    """Two different photos, both named x.png, in folders a/ and b/."""
    return [
        save_image(textured_images(1, 36, 44, seed=seed), tmp_path / folder / "x.png")
        for seed, folder in ((1, "a"), (2, "b"))
    ]


def run(models, *args: object) -> int:
    return main(["--models-dir", str(models), *map(str, args)])


def one_error_line(capsys, command: str) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith(f"depthstyle {command}: error: ")]
    assert len(lines) == 1, err
    return lines[0]


def paint_any(photo) -> torch.Tensor:
    with torch.inference_mode():
        return stylize_any(load_any_style_model(), load_image(photo), load_image(PAINTING), depth_preserve=0)


@pytest.mark.parametrize("as_folders", [False, True], ids=["files", "folders"])
def test_two_inputs_with_one_name_get_two_results(tmp_path, models, twins, capsys, as_folders):
    inputs = [p.parent for p in twins] if as_folders else twins
    out = tmp_path / "out"
    assert run(models, "stylize", *inputs, "--style", PAINTING, "--depth-preserve", 0, "-o", out) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a_x_styled.png", "b_x_styled.png"]
    for folder, photo in zip("ab", twins, strict=True):  # each result is its own photo's
        assert (load_image(out / f"{folder}_x_styled.png") - paint_any(photo)).abs().max() <= 1 / 255 + 1e-6
    assert f"{twins[0]} -> {out / 'a_x_styled.png'}" in capsys.readouterr().err


def test_every_per_image_command_names_clashing_inputs_apart(tmp_path, models, twins):
    out = tmp_path / "out"
    assert run(models, "stylize", *twins, "--model", "lively.safetensors", "-o", out / "trained") == 0
    assert (
        run(models, "depth", *twins, "--model", "tiny.safetensors", "--resolution", 28, "-o", out / "d") == 0
    )
    assert sorted(p.name for p in (out / "trained").iterdir()) == ["a_x_styled.png", "b_x_styled.png"]
    assert sorted(p.name for p in (out / "d").iterdir()) == ["a_x_depth.png", "b_x_depth.png"]


def test_output_names_stay_distinct_in_every_clash():
    def names(*paths: str) -> list[str]:
        from pathlib import Path

        return list(output_stems([Path(p) for p in paths]).values())

    assert names("p.jpg", "q.jpg") == ["p", "q"]
    assert names("x.png", "sub/x.png") == ["x", "sub_x"]
    assert names("a/x.png", "a/x.jpg", "b/x.png") == ["a_x_png", "a_x_jpg", "b_x"]
    assert names("X.png", "x.png") == ["X_png", "x_png_2"]  # one file on Windows and macOS
    clashing = names("a/x.png", "b/x.png", "a_x.png")
    assert len({n.casefold() for n in clashing}) == 3, clashing


def test_a_file_named_twice_is_painted_once(tmp_path, models, twins, capsys):
    out = tmp_path / "out"
    assert run(models, "stylize", twins[0], twins[0].parent, "--style", PAINTING, "--depth-preserve", 0,
               "-o", out) == 0  # fmt: skip
    assert [p.name for p in out.iterdir()] == ["x_styled.png"]
    assert "[1/1]" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--tile", 3], "tile must be 0 (whole images) or at least 160 pixels, got 3"),
        (
            ["--style", PAINTING, PAINTING, "--style-weights", 0, 0],
            "style weights must be finite, 0 or more, and not all 0",
        ),
    ],
    ids=["tile", "style-weights"],
)
def test_settings_that_cannot_work_are_one_error_line(tmp_path, models, twins, capsys, args, words):
    out = tmp_path / "out"
    assert run(models, "stylize", twins[0], "--style", PAINTING, *args, "--depth-preserve", 0, "-o", out) == 2
    assert words in one_error_line(capsys, "stylize")
    assert not out.exists() or not list(out.iterdir())


@pytest.mark.parametrize("command", ["stylize", "depth", "optimize", "evaluate"])
def test_an_output_that_is_a_file_is_refused_before_any_work(tmp_path, models, twins, capsys, command):
    taken = tmp_path / "results"
    taken.write_text("keep me")
    args = {
        "stylize": ["stylize", twins[0], "--style", PAINTING, "--depth-preserve", 0],
        "depth": ["depth", twins[0], "--model", "tiny.safetensors"],
        "optimize": ["optimize", twins[0], "--style", PAINTING, "--depth-weight", 0],
        "evaluate": [
            "evaluate",
            "--content",
            twins[0],
            "--stylized",
            twins[0],
            "--depth-model",
            "tiny.safetensors",
        ],
    }[command]
    assert run(models, *args, "-o", taken) == 2
    assert f"-o {taken} is a file, not a folder" in one_error_line(capsys, command)
    assert taken.read_text() == "keep me"


def test_an_output_folder_that_cannot_be_made_is_one_error_line(tmp_path, models, twins, capsys):
    blocked = tmp_path / "file"
    blocked.write_text("")
    assert run(models, "stylize", twins[0], "--style", PAINTING, "-o", blocked / "out") == 2
    assert f"cannot make the output folder {blocked / 'out'}: {blocked} is a file" in one_error_line(
        capsys, "stylize"
    )
    if sys.platform.startswith("linux"):  # a folder the system refuses to make: found at the first write
        out = "/proc/depthstyle-test"
        assert (
            run(models, "depth", twins[0], "--model", "tiny.safetensors", "--resolution", 28, "-o", out) == 2
        )
        assert f"No such file or directory: {out}" in one_error_line(capsys, "depth")


@pytest.mark.parametrize("command", ["stylize", "depth", "train"])
@pytest.mark.parametrize("where", ["before", "after"])
def test_a_device_this_machine_lacks_is_one_error_line(tmp_path, models, twins, capsys, command, where):
    args = {
        "stylize": ["stylize", twins[0], "--style", PAINTING, "-o", tmp_path / "out"],
        "depth": ["depth", twins[0], "-o", tmp_path / "out"],
        "train": [
            "train",
            "--style",
            PAINTING,
            "--content-dir",
            twins[0].parent,
            "-o",
            tmp_path / "s.safetensors",
        ],
    }[command]
    for device, words in (
        (ABSENT_ACCELERATOR, f"device '{ABSENT_ACCELERATOR}' is not available: this machine has cpu"),
        ("banana", "unknown device 'banana': use auto, cpu, or an accelerator such as cuda"),
        ("cpu:3", "device 'cpu:3' does not exist: this machine has only cpu:0"),
    ):
        option = ["--device", device]
        assert (
            run(models, *(option if where == "before" else []), *args, *(option if where == "after" else []))
            == 2
        )
        assert words in one_error_line(capsys, command)
    assert not (tmp_path / "out").exists() and not (tmp_path / "s.safetensors").exists()
