"""The ``depthstyle`` command line, run in-process through its real entry point."""

import pytest
import torch

from depthstyle.cli import build_parser, main
from depthstyle.depthstyle_core.images import load_image, save_image

from .factories import write_depth_checkpoint


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    commands = build_parser()._subparsers._group_actions[0].choices
    assert set(commands) >= {"depth"}
    for name in commands:
        assert name in out


def test_depth_writes_grey_and_colour_maps_for_files_and_folders(tmp_path, capsys):
    models = tmp_path / "models"
    write_depth_checkpoint(models / "depth" / "tiny.safetensors", seed=3)
    photos = tmp_path / "photos"
    save_image(torch.rand(1, 3, 30, 45), photos / "a.png")
    save_image(torch.rand(1, 3, 17, 23), photos / "nested" / "b.jpg")
    out = tmp_path / "out"
    code = main(
        [
            "--models-dir",
            str(models),
            "depth",
            str(photos),
            "-o",
            str(out),
            "--model",
            "tiny.safetensors",
            "--resolution",
            "28",
            "--colormap",
        ]
    )
    assert code == 0
    grey = load_image(out / "a_depth.png")
    assert grey.shape == (1, 3, 30, 45)
    assert torch.equal(grey[:, 0], grey[:, 1]) and float(grey.max()) == 1.0 and float(grey.min()) == 0.0
    colour = load_image(out / "b_depth_color.png")
    assert colour.shape == (1, 3, 17, 23) and not torch.equal(colour[:, 0], colour[:, 2])
    assert "[2/2]" in capsys.readouterr().err


def test_missing_model_offline_is_a_clean_error_naming_the_folder(tmp_path, capsys, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    image = save_image(torch.rand(1, 3, 14, 14), tmp_path / "x.png")
    code = main(
        [
            "--models-dir",
            str(tmp_path / "models"),
            "depth",
            str(image),
            "-o",
            str(tmp_path / "o"),
            "--model",
            "base",
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "depthstyle depth: error:" in err
    assert "Depth-Anything-V2-Base-hf" in err and str(tmp_path / "models" / "depth") in err


def test_no_images_found_is_reported(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["depth", str(tmp_path / "empty"), "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "depthstyle depth: error: no images found in" in err and "empty" in err


def test_stylize_with_a_saved_style_model_at_full_size(tmp_path):
    from depthstyle.depthstyle_core.models.transformer_net import TransformerNet
    from depthstyle.depthstyle_core.style_model import save_style_model

    torch.manual_seed(0)
    models = tmp_path / "models"
    save_style_model(models / "styles" / "mosaic.safetensors", TransformerNet())
    photo = save_image(torch.rand(1, 3, 21, 34), tmp_path / "p.png")
    out = tmp_path / "out"
    base = ["--models-dir", str(models), "stylize", str(photo), "--model", "mosaic.safetensors", "-o"]
    assert main([*base, str(out)]) == 0
    styled = load_image(out / "p_styled.png")
    assert styled.shape == (1, 3, 21, 34)
    assert float((styled - load_image(photo)).abs().mean()) > 0.01
    assert main([*base, str(tmp_path / "weak"), "--strength", "0"]) == 0
    assert torch.allclose(load_image(tmp_path / "weak" / "p_styled.png"), load_image(photo), atol=1 / 255)


def test_convert_turns_a_community_pickle_into_a_loadable_style_model(tmp_path, capsys):
    from depthstyle.depthstyle_core.models.transformer_net import TransformerNet
    from depthstyle.depthstyle_core.style_model import load_style_model

    net = TransformerNet()
    torch.save(net.state_dict(), tmp_path / "candy.pth")
    assert main(["convert", str(tmp_path / "candy.pth"), "-o", str(tmp_path / "candy.safetensors")]) == 0
    loaded, metadata = load_style_model(tmp_path / "candy.safetensors")
    assert metadata["architecture"] == "TransformerNet"
    for key, value in net.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)
    assert main(["stylize", str(tmp_path / "x.png"), "--model", str(tmp_path / "candy.pth"), "-o", "o"]) == 2
    assert "depthstyle convert" in capsys.readouterr().err


def test_train_then_resume_then_stylize_from_the_command_line(tmp_path, capsys):
    from depthstyle.depthstyle_core.style_model import load_style_model

    from .factories import write_vgg_checkpoint

    models = tmp_path / "models"
    write_vgg_checkpoint(models / "vgg" / "vgg16.tv_in1k.safetensors")
    write_depth_checkpoint(models / "depth" / "tiny.safetensors", seed=2)
    photos = tmp_path / "photos"
    for index in range(3):
        save_image(torch.rand(1, 3, 40, 52), photos / f"p{index}.png")
    (photos / "notes.txt").write_text("not an image")
    style = save_image(torch.rand(1, 3, 36, 36), tmp_path / "style.png")
    out = tmp_path / "styles" / "mine.safetensors"
    train = [
        "--models-dir",
        str(models),
        "train",
        "--style",
        str(style),
        "--content-dir",
        str(photos),
        "-o",
        str(out),
        "--batch-size",
        "2",
        "--image-size",
        "32",
        "--style-size",
        "32",
        "--depth-model",
        "tiny.safetensors",
        "--checkpoint-every",
        "2",
    ]
    assert main([*train, "--iterations", "2"]) == 0
    _, metadata = load_style_model(out)
    assert metadata["train.step"] == "2"
    assert main([*train, "--iterations", "3", "--resume"]) == 0
    err = capsys.readouterr().err
    assert "3/3" in err and "mine.loss.png" in err
    _, metadata = load_style_model(out)
    assert metadata["train.step"] == "3" and metadata["train.complete"] == "true"
    assert out.with_name("mine.loss.png").is_file()
    assert main(["stylize", str(photos / "p0.png"), "--model", str(out), "-o", str(tmp_path / "o")]) == 0
    assert load_image(tmp_path / "o" / "p0_styled.png").shape == (1, 3, 40, 52)
