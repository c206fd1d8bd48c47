"""The any-painting network on OpenVINO's CPU plugin: the same pictures as torch for every feature,
chosen automatically on the CPU, compiled once per network and its weights, and clear errors."""

from __future__ import annotations

import sys
from pathlib import Path

import openvino
import pytest
import torch
from torch import nn

from depthstyle.cli import main
from depthstyle.depthstyle_core.any_style.model_file import load_any_style_model
from depthstyle.depthstyle_core.any_style.runtime import openvino_parts, release_runtime_memory
from depthstyle.depthstyle_core.any_style.stylize import clip_look, stylize_any
from depthstyle.depthstyle_core.errors import DeviceError, SettingsError
from depthstyle.depthstyle_core.images import load_image, save_image
from depthstyle.depthstyle_core.models.microast import ConvLayer
from depthstyle.depthstyle_core.runtimes import chosen_runtime, openvino_problem
from depthstyle.depthstyle_core.runtimes.openvino_graph import UnsupportedModule, image_input, module_graph
from depthstyle.depthstyle_core.runtimes.openvino_parts import _compiled

DATA = Path(__file__).parent / "data" / "any_style"
ONE_LEVEL = 1 / 255


@pytest.fixture(scope="module")
def model():
    return load_any_style_model()


@pytest.fixture(scope="module")
def photo() -> torch.Tensor:
    return load_image(DATA / "content.png")[..., ::2, ::2].contiguous()  # 120 x 192


@pytest.fixture(scope="module")
def painting() -> torch.Tensor:
    return load_image(DATA / "style.png")


def both(model, photo, painting, **settings) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.inference_mode():
        on_torch = stylize_any(model, photo, painting, runtime="torch", **settings)
        on_openvino = stylize_any(model, photo, painting, runtime="openvino", **settings)
    return on_torch, on_openvino


def largest_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape
    return (a - b).abs().max().item()


@pytest.mark.parametrize("size", [(120, 192), (97, 131), (9, 8), (3, 5)])
def test_openvino_paints_every_size_as_torch_does(model, photo, painting, size):
    resized = torch.nn.functional.interpolate(photo, size=size, mode="bilinear", antialias=True).clamp(0, 1)
    on_torch, on_openvino = both(model, resized, painting)
    assert on_openvino.shape == (1, 3, *size)
    assert largest_difference(on_torch, on_openvino) < ONE_LEVEL / 10
    assert (on_torch - resized).abs().mean() > 0.05  # it really painted


def test_openvino_keeps_every_feature_as_torch_does(model, photo, painting):
    """Tiles, a batch that shares one look, a mask, depth with depth_preserve (a per-pixel strength),
    partial strength, a brush size and preserved colours, all together."""
    full = load_image(DATA / "content.png")[0]  # 240 x 384: at scale 0.75, two tiles of 160 across
    frames = torch.stack([full, full.roll(7, dims=-1), full.flip(-1)])
    mask = torch.linspace(0, 1, frames.shape[-1]).expand(3, 1, frames.shape[-2], -1)
    depth = torch.linspace(1, 0, frames.shape[-2])[:, None].expand(3, 1, -1, frames.shape[-1])
    settings = dict(
        frames="shared",
        tile=160,
        mask=mask,
        depth=depth,
        depth_preserve=0.6,
        strength=0.8,
        scale=0.75,
        preserve_color=True,
        chunk_size=2,
    )
    on_torch, on_openvino = both(model, frames, painting, **settings)
    assert largest_difference(on_torch, on_openvino) < ONE_LEVEL / 10
    assert largest_difference(on_openvino[:, :, :, :2], frames[:, :, :, :2]) < 0.02  # where the mask is 0


def test_a_clips_look_is_the_same_on_both(model, photo, painting):
    frames = torch.cat([photo, photo.roll(11, dims=-1)])
    with torch.inference_mode():
        looks = {
            runtime: clip_look(model, frames, painting, strength=0.5, runtime=runtime)
            for runtime in ("torch", "openvino")
        }
    for (mean_t, var_t), (mean_o, var_o) in zip(
        looks["torch"].stats.values(), looks["openvino"].stats.values(), strict=True
    ):
        assert torch.allclose(mean_t, mean_o, atol=1e-4) and torch.allclose(var_t, var_o, rtol=1e-4)


def test_the_large_convolution_in_its_polyphase_form_is_the_same_convolution():
    """MicroAST's last layer (16 -> 3 channels, 9x9) runs cut into 4x4 phases where the sides allow it."""
    torch.manual_seed(0)
    layer = ConvLayer(16, 3, 9)
    x = torch.rand(2, 16, 24, 36)
    with torch.no_grad():
        expected = layer(x)
    for multiple, polyphase in ((4, True), (2, False), (1, False)):
        node = image_input("x", 16)
        out = module_graph(nn.Sequential(layer), node, multiple)
        graph = openvino.Model([out], [node.get_node()], "conv")
        kinds = {op.get_type_name() for op in graph.get_ordered_ops()}
        assert ("SpaceToDepth" in kinds) == polyphase
        compiled = _compiled([node], out, "conv")
        result = torch.from_numpy(compiled([x.numpy()], share_outputs=False)[0])
        assert largest_difference(result, expected) < 1e-4


def test_a_module_without_an_openvino_description_is_refused():
    with pytest.raises(UnsupportedModule, match="GELU"):
        module_graph(nn.GELU(), image_input("x", 3))
    with pytest.raises(UnsupportedModule, match="nearest"):
        module_graph(nn.Upsample(scale_factor=2, mode="nearest"), image_input("x", 3))


def test_the_network_compiles_once_and_again_when_its_weights_change(model, photo, painting):
    copy = load_any_style_model()
    first = openvino_parts(copy)
    assert openvino_parts(copy) is first
    before = stylize_any(copy, photo, painting, runtime="openvino")
    with torch.no_grad():
        copy.decoder.dec3[-1].conv_layer.bias.add_(0.2)
    again = openvino_parts(copy)
    assert again is not first
    after = stylize_any(copy, photo, painting, runtime="openvino")
    assert (after - before).mean() > 0.1  # the new bias shows: not the old compiled weights
    assert largest_difference(after, stylize_any(copy, photo, painting, runtime="torch")) < ONE_LEVEL / 10


def test_auto_takes_openvino_on_the_cpu_and_torch_elsewhere():
    assert chosen_runtime("auto", "cpu") == "openvino"
    assert chosen_runtime("auto", torch.device("cuda:1")) == "torch"
    assert chosen_runtime("torch", "cpu") == "torch"
    assert chosen_runtime("openvino", "cpu") == "openvino"


def test_wrong_runtime_settings_are_clear_errors(model, photo, painting):
    with pytest.raises(SettingsError, match="runtime must be one of"):
        stylize_any(model, photo, painting, runtime="tensorrt")
    with pytest.raises(SettingsError, match="CPU only, not on cuda"):
        chosen_runtime("openvino", "cuda")


def test_without_openvino_auto_falls_back_to_torch_and_asking_for_it_names_the_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)  # makes `import openvino` fail
    openvino_problem.cache_clear()
    try:
        assert "not installed" in openvino_problem()
        assert chosen_runtime("auto", "cpu") == "torch"
        with pytest.raises(SettingsError, match=r"depthstyle\[cpu\]"):
            chosen_runtime("openvino", "cpu")
    finally:
        openvino_problem.cache_clear()


def test_the_command_says_which_runtime_and_both_write_the_same_picture(tmp_path, photo, capsys):
    source = tmp_path / "photo.png"
    save_image(photo, source)
    results = {}
    for runtime in ("auto", "torch"):
        out = tmp_path / runtime
        args = ["--device", "cpu", "stylize", str(source), "--style", str(DATA / "style.png")]
        assert main([*args, "--depth-preserve", "0", "--runtime", runtime, "-o", str(out)]) == 0
        err = capsys.readouterr().err
        shown = "openvino" if runtime == "auto" else "torch"
        assert f"depthstyle: running on cpu ({shown})" in err
        results[runtime] = load_image(out / "photo_styled.png")
    assert largest_difference(results["auto"], results["torch"]) <= ONE_LEVEL + 1e-6


def test_the_runtime_is_an_option_of_the_any_painting_network_only(tmp_path, photo, capsys):
    source = tmp_path / "photo.png"
    save_image(photo, source)
    model = tmp_path / "style.safetensors"
    args = ["stylize", str(source), "--model", str(model), "--runtime", "openvino", "-o", str(tmp_path)]
    assert main(args) != 0
    assert "--runtime work with --style only" in capsys.readouterr().err


def test_the_paintings_signals_are_the_same_on_both(model, painting):
    """Mean, spread, weight and bias of both stages, for paintings of odd sizes in one batch."""
    paintings = torch.cat([painting[..., :97, :131], painting.flip(-1)[..., :97, :131]])
    with torch.inference_mode():
        expected = model.style_signals(paintings)
        found = openvino_parts(model).style_signals(paintings)
    for want, got in zip(expected.stages, found.stages, strict=True):
        for name in ("mean", "std", "weight", "bias"):
            a, b = getattr(want, name), getattr(got, name)
            assert a.shape == b.shape == (2, 64, 1, 1)
            assert torch.allclose(a, b, rtol=1e-4, atol=1e-5), name


def test_an_openvino_too_old_for_our_graphs_is_named_and_auto_stays_on_torch(monkeypatch):
    old = type(sys)("openvino")
    old.__version__ = "2024.6.0-17404-4c0f47d2335-releases/2024/6"
    monkeypatch.setitem(sys.modules, "openvino", old)
    openvino_problem.cache_clear()
    try:
        assert "openvino 2024.6.0" in openvino_problem() and "too old" in openvino_problem()
        assert chosen_runtime("auto", "cpu") == "torch"
    finally:
        openvino_problem.cache_clear()


def test_the_working_memory_can_be_let_go_and_the_network_still_paints(photo, painting):
    fresh = load_any_style_model()
    release_runtime_memory(fresh)  # never ran on OpenVINO: nothing to let go
    before = stylize_any(fresh, photo, painting, runtime="openvino")
    release_runtime_memory(fresh)
    assert torch.equal(stylize_any(fresh, photo, painting, runtime="openvino"), before)


def test_when_openvino_cannot_compile_auto_warns_and_paints_on_torch(monkeypatch, photo, painting):
    def refuse(*args, **kwargs):
        raise RuntimeError("Exception from src/plugins/intel_cpu: unsupported instruction set")

    monkeypatch.setattr(openvino.Core, "compile_model", refuse)
    fresh = load_any_style_model()
    with pytest.warns(RuntimeWarning, match="unsupported instruction set.*runs on torch"):
        result = stylize_any(fresh, photo, painting, runtime="auto")
    assert torch.equal(result, stylize_any(fresh, photo, painting, runtime="torch"))
    with pytest.raises(DeviceError, match="unsupported instruction set.*--runtime torch"):
        stylize_any(fresh, photo, painting, runtime="openvino")


def test_a_channels_last_network_compiles_to_the_same_graph(model, photo, painting):
    """The command line and ComfyUI hold the network channels-last; its weights read the same."""
    prepared = load_any_style_model().to(memory_format=torch.channels_last)
    with torch.inference_mode():
        expected = stylize_any(model, photo, painting, runtime="torch")
        found = stylize_any(prepared, photo, painting, runtime="openvino")
    assert largest_difference(expected, found) < ONE_LEVEL / 10
