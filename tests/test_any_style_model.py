"""The built-in any-painting network: shipped weights, conversion, strict loading, parity with the authors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from depthstyle.depthstyle_core.any_style.model_file import (
    BUILTIN_WEIGHTS,
    WEIGHTS_DIR,
    convert_microast_checkpoints,
    load_any_style_model,
    save_any_style_model,
)
from depthstyle.depthstyle_core.any_style.stylize import stylize_any
from depthstyle.depthstyle_core.checkpoint import read_safetensors, write_safetensors_atomic
from depthstyle.depthstyle_core.errors import CheckpointError
from depthstyle.depthstyle_core.images import load_image
from depthstyle.depthstyle_core.models.microast import PARTS, MicroAST
from depthstyle.depthstyle_core.style_model import save_style_model

from .bench_modules import bench_module
from .style_helpers import lively_net

pytestmark = pytest.mark.usefixtures("single_thread")

PUBLISHED = Path(__file__).parent / "data" / "microast_published"
REFERENCE = Path(__file__).parent / "data" / "any_style"


def test_the_shipped_file_is_the_conversion_of_the_published_weights(tmp_path):
    converted = convert_microast_checkpoints([PUBLISHED], tmp_path / "again.safetensors")
    shipped, metadata = read_safetensors(BUILTIN_WEIGHTS)
    again, _ = read_safetensors(converted)
    assert list(shipped) == list(again) and len(shipped) == 62
    for key, tensor in shipped.items():
        assert torch.equal(tensor, again[key]), key
    assert sum(t.numel() for t in shipped.values()) == 471_987
    assert {key.split(".")[0] for key in shipped} == set(PARTS)
    assert metadata["architecture"] == "MicroAST"
    assert (WEIGHTS_DIR / "LICENSE").read_text().startswith("MIT License")


def test_the_four_files_can_be_named_one_by_one_and_a_missing_one_is_named(tmp_path):
    files = sorted(PUBLISHED.glob("*.pth.tar"))
    assert len(files) == 4
    convert_microast_checkpoints(files, tmp_path / "a.safetensors")
    with pytest.raises(CheckpointError, match="missing: modulator"):
        convert_microast_checkpoints(
            [f for f in files if "modulator" not in f.name], tmp_path / "b.safetensors"
        )
    assert not (tmp_path / "b.safetensors").exists()


def test_a_pickle_that_is_not_plain_tensors_is_refused(tmp_path):
    folder = tmp_path / "parts"
    folder.mkdir()
    for part in PARTS:
        torch.save({"weights": [1, 2, 3]} if part == "decoder" else {}, folder / f"{part}_iter_1.pth.tar")
    with pytest.raises(CheckpointError, match="decoder_iter_1.pth.tar does not hold a state dict"):
        convert_microast_checkpoints([folder], tmp_path / "out.safetensors")


def test_the_builtin_model_loads_offline_with_no_argument():
    model = load_any_style_model()
    assert isinstance(model, MicroAST) and not model.training
    assert next(model.parameters()).dtype == torch.float32


def test_a_trained_style_model_is_refused_and_named(tmp_path):
    path = save_style_model(tmp_path / "candy.safetensors", lively_net())
    with pytest.raises(CheckpointError, match="holds a 'TransformerNet' model.*--model"):
        load_any_style_model(path)


def test_a_file_with_wrong_keys_lists_them_and_says_what_it_looks_like(tmp_path):
    tensors, _ = read_safetensors(BUILTIN_WEIGHTS)
    decoder_only = {k[len("decoder.") :]: v for k, v in tensors.items() if k.startswith("decoder.")}
    path = write_safetensors_atomic(tmp_path / "decoder.safetensors", decoder_only)
    with pytest.raises(CheckpointError) as caught:
        load_any_style_model(path)
    message = str(caught.value)
    assert "missing keys" in message and "content_encoder.enc1.0.conv_layer.weight" in message
    assert "one part of the authors' MicroAST weights" in message


def test_a_saved_model_loads_back_equal(tmp_path):
    model = load_any_style_model()
    with torch.no_grad():
        model.decoder.dec3[10].conv_layer.bias.add_(0.25)
    path = save_any_style_model(tmp_path / "tuned.safetensors", model, extra_metadata={"note": "test"})
    again = load_any_style_model(path)
    for (name, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    assert read_safetensors(path)[1]["note"] == "test"


def test_the_output_equals_the_authors_reference_within_one_level():
    photo = load_image(REFERENCE / "content.png")
    painting = load_image(REFERENCE / "style.png")
    expected = load_image(REFERENCE / "expected.png")
    result = stylize_any(load_any_style_model(), photo, painting, style_size=0)
    assert result.shape == expected.shape == (1, 3, 240, 384)
    assert (result - expected).abs().max().item() <= 1 / 255
    assert (result - photo).abs().mean().item() > 0.15, "the reference paints the photo, visibly"


def test_the_authors_forward_and_ours_agree_on_a_size_that_is_not_a_multiple_of_four():
    model = load_any_style_model()
    photo = load_image(REFERENCE / "content.png")[..., :237, :381]
    painting = load_image(REFERENCE / "style.png")
    with torch.no_grad():
        direct = model(photo, painting).clamp(0, 1)
    assert direct.shape[-2:] == (237, 381)
    torch.testing.assert_close(stylize_any(model, photo, painting, style_size=0), direct, atol=1e-4, rtol=0)


def test_the_benchmarks_plain_reference_computes_what_we_compute():
    bench = bench_module("any_style_bench")
    model = load_any_style_model()
    photo = load_image(REFERENCE / "content.png")[..., :64, :96]
    painting = load_image(REFERENCE / "style.png")
    with torch.no_grad():
        reference = bench.plain_forward(model.state_dict(), photo, painting)
    torch.testing.assert_close(
        stylize_any(model, photo, painting, style_size=0), reference, atol=1e-4, rtol=0
    )
