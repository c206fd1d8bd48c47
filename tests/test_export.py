"""``depthstyle export``: ONNX files of a trained style and of the any-painting network that onnxruntime
runs at any size (odd ones included) within 1/255 of PyTorch, with the model and its licence named."""

from __future__ import annotations

import sys

import onnx
import onnxruntime as ort
import pytest
import torch

from depthstyle.cli import main
from depthstyle.depthstyle_core.any_style.model_file import load_any_style_model, save_any_style_model
from depthstyle.depthstyle_core.any_style.stylize import stylize_any
from depthstyle.depthstyle_core.errors import SettingsError
from depthstyle.depthstyle_core.export import export_onnx
from depthstyle.depthstyle_core.models.transformer_net import TransformerNet
from depthstyle.depthstyle_core.style_model import save_style_model
from depthstyle.depthstyle_core.stylize import stylize

from .style_helpers import textured_images

SIZES = [(2, 8, 9), (1, 97, 131), (1, 160, 96)]
ONE_LEVEL = 1 / 255


def metadata(path) -> dict[str, str]:
    return {entry.key: entry.value for entry in onnx.load(str(path)).metadata_props}


def run(path, **inputs: torch.Tensor) -> torch.Tensor:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {name: value.numpy() for name, value in inputs.items()})
    return torch.from_numpy(out)


@pytest.fixture(scope="module")
def builtin_onnx(tmp_path_factory):
    path = tmp_path_factory.mktemp("onnx") / "builtin.onnx"
    assert main(["export", "builtin", "-o", str(path)]) == 0
    return path


def test_the_built_in_network_runs_in_onnxruntime_at_any_size_within_one_level(builtin_onnx):
    model = load_any_style_model()
    painting = textured_images(1, 70, 90, seed=3)
    for batch, height, width in SIZES:
        photo = textured_images(batch, height, width, seed=height)
        out = run(builtin_onnx, photo=photo, painting=painting)
        expected = stylize_any(model, photo, painting, style_size=0)
        assert out.shape == expected.shape == (batch, 3, height, width)
        assert (out - expected).abs().max() <= ONE_LEVEL, (height, width)
        assert (out - photo).abs().mean() > 0.05, "it paints"
    described = metadata(builtin_onnx)
    assert described["architecture"] == "MicroAST" and described["licence"].startswith("MIT")
    assert described["producer"] == "DepthStyle" and "painting [1,3,h,w]" in described["inputs"]


def test_a_trained_style_and_an_any_painting_file_export_by_their_architecture(tmp_path, capsys):
    torch.manual_seed(0)
    net = TransformerNet().eval()
    with torch.no_grad():
        net.deconv3.conv2d.bias.add_(torch.tensor([0.3, -0.2, 0.1]))
    save_style_model(tmp_path / "styles" / "mine.safetensors", net)
    assert (
        main(["--models-dir", str(tmp_path), "export", "mine.safetensors", "-o", str(tmp_path / "mine.onnx")])
        == 0
    )
    assert "mine.safetensors -> " in capsys.readouterr().err
    for batch, height, width in SIZES:
        photo = textured_images(batch, height, width, seed=width)
        out = run(tmp_path / "mine.onnx", photo=photo)
        assert (out - stylize(net, photo)).abs().max() <= ONE_LEVEL, (height, width)
    described = metadata(tmp_path / "mine.onnx")
    assert described["architecture"] == "TransformerNet" and described["model"] == "mine.safetensors"
    assert described["licence"] == "not stated in the model file"

    tuned = load_any_style_model()
    with torch.no_grad():
        tuned.decoder.dec3[10].conv_layer.bias.sub_(0.3)
    save_any_style_model(tmp_path / "any_style" / "tuned.safetensors", tuned)
    target = tmp_path / "tuned.onnx"
    assert main(["--models-dir", str(tmp_path), "export", "tuned.safetensors", "-o", str(target)]) == 0
    photo, painting = textured_images(1, 64, 80, seed=1), textured_images(1, 48, 48, seed=2)
    out = run(target, photo=photo, painting=painting)
    assert (out - stylize_any(tuned, photo, painting, style_size=0)).abs().max() <= ONE_LEVEL
    assert (out - stylize_any(load_any_style_model(), photo, painting, style_size=0)).abs().mean() > 0.02


def test_an_output_that_is_not_onnx_or_a_missing_exporter_is_a_clear_error(tmp_path, capsys, monkeypatch):
    assert main(["export", "builtin", "-o", str(tmp_path / "model.pt")]) == 2
    assert "name an .onnx file" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "onnxscript", None)
    with pytest.raises(SettingsError, match="pip install onnx onnxscript"):
        export_onnx(load_any_style_model(), tmp_path / "x.onnx", {})
    assert not (tmp_path / "x.onnx").exists()


def test_exporting_leaves_the_padding_of_small_images_as_it_was():
    """The export writes one reflection pad; outside an export, images under 8 pixels still replicate."""
    model = load_any_style_model()
    tiny = torch.rand(1, 3, 3, 5)
    out = stylize_any(model, tiny, torch.rand(1, 3, 32, 32))
    assert out.shape == tiny.shape and bool(torch.isfinite(out).all())
