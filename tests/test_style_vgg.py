"""VGG-16 features: torchvision parity, taps, frozen weights, loading only features.* from a timm file."""

from __future__ import annotations

import pytest
import torch
import torchvision
from safetensors.torch import save_file

from depthstyle.depthstyle_core.errors import CheckpointError
from depthstyle.depthstyle_core.models.transformer_net import TransformerNet
from depthstyle.depthstyle_core.models.vgg import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    JOHNSON_TAPS,
    TAPS,
    VGG16_HUB,
    VGG16Features,
    load_vgg16,
)

from .fake_hub import prefill_cache

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def torchvision_features() -> torch.nn.Sequential:
    torch.manual_seed(0)
    return torchvision.models.vgg16(weights=None).features.eval()


@pytest.fixture(scope="module")
def timm_like_file(tmp_path_factory, torchvision_features) -> bytes:
    """A file laid out like timm/vgg16.tv_in1k: all 13 convs (conv5 too) plus a (tiny) classifier head."""
    tensors = {f"features.{k}": v for k, v in torchvision_features.state_dict().items()}
    tensors["pre_logits.fc1.bias"] = torch.zeros(8)
    tensors["head.fc.weight"] = torch.zeros(2, 8)
    path = tmp_path_factory.mktemp("vgg") / "model.safetensors"
    save_file(tensors, str(path), metadata={"format": "pt"})
    return path.read_bytes()


def normalized(x: torch.Tensor) -> torch.Tensor:
    return (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)


def test_layer_indices_and_taps_match_torchvision(torchvision_features):
    ours = VGG16Features()
    theirs = {
        k: tuple(v.shape) for k, v in torchvision_features.state_dict().items() if int(k.split(".")[0]) <= 25
    }
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == {
        f"features.{k}": s for k, s in theirs.items()
    }
    assert len(ours.features) == 26
    assert TAPS == {
        "relu1_1": 1,
        "relu1_2": 3,
        "relu2_1": 6,
        "relu2_2": 8,
        "relu3_1": 11,
        "relu3_3": 15,
        "relu4_1": 18,
        "relu4_2": 20,
        "relu4_3": 22,
        "relu5_1": 25,
    }
    assert JOHNSON_TAPS == ("relu1_2", "relu2_2", "relu3_3", "relu4_3")
    for index in TAPS.values():
        assert isinstance(torchvision_features[index], torch.nn.ReLU)


def test_outputs_equal_torchvision_under_the_same_random_weights(torchvision_features):
    ours = VGG16Features()
    ours.features.load_state_dict(
        {k: v for k, v in torchvision_features.state_dict().items() if int(k.split(".")[0]) <= 25}
    )
    x = torch.rand(2, 3, 40, 36)
    with torch.no_grad():
        features = ours(x, taps=TAPS)
        for name, index in TAPS.items():
            expected = torchvision_features[: index + 1](normalized(x))
            assert features[name].shape == expected.shape
            torch.testing.assert_close(features[name], expected, rtol=1e-5, atol=1e-6)
            assert expected.abs().max() > 0


def test_requested_taps_only_and_early_stop():
    vgg = VGG16Features()
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        full = vgg(x, taps=TAPS)
        default = vgg(x)
        content = vgg(x, taps=["relu2_2"])
    assert list(full) == list(TAPS)
    assert list(default) == list(JOHNSON_TAPS)
    assert list(content) == ["relu2_2"]
    assert torch.equal(content["relu2_2"], full["relu2_2"])
    with pytest.raises(ValueError):
        vgg(x, taps=[])


def test_weights_are_frozen_but_gradients_reach_the_image():
    vgg = VGG16Features()
    assert not any(p.requires_grad for p in vgg.parameters())
    assert not vgg.training
    x = torch.rand(1, 3, 16, 16, requires_grad=True)
    vgg(x)["relu4_3"].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in vgg.parameters())


def test_stylised_and_content_in_one_batch_equal_separate_runs():
    vgg = VGG16Features()
    stylised, content = torch.rand(2, 3, 24, 24), torch.rand(2, 3, 24, 24)
    with torch.no_grad():
        joint = vgg(torch.cat([stylised, content]), taps=TAPS)
        alone = vgg(stylised, taps=TAPS)
    for name in TAPS:
        torch.testing.assert_close(joint[name][:2], alone[name])


def test_load_vgg16_reads_features_from_the_pinned_hub_file(
    tmp_path, monkeypatch, timm_like_file, torchvision_features
):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert VGG16_HUB.repo_id == "timm/vgg16.tv_in1k"
    assert VGG16_HUB.revision == "3394518cba29aee1ea82a49d971be90d2dd1dab7"
    prefill_cache(
        tmp_path, VGG16_HUB.repo_id, VGG16_HUB.filename, timm_like_file, revision=VGG16_HUB.revision
    )
    vgg = load_vgg16(cache_dir=tmp_path)
    assert not vgg.training and not any(p.requires_grad for p in vgg.parameters())
    assert torch.equal(vgg.features[21].weight, torchvision_features[21].weight)
    assert torch.equal(vgg.features[24].weight, torchvision_features[24].weight)
    assert torch.equal(vgg.features[0].bias, torchvision_features[0].bias)


def test_load_vgg16_from_a_model_folder_by_its_local_name(tmp_path, timm_like_file, torchvision_features):
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "vgg16.tv_in1k.safetensors").write_bytes(timm_like_file)
    vgg = load_vgg16(model_dirs=[folder], cache_dir=tmp_path / "empty-cache")
    assert torch.equal(vgg.features[19].weight, torchvision_features[19].weight)


def test_load_vgg16_refuses_a_style_model(tmp_path):
    path = tmp_path / "style.safetensors"
    save_file(TransformerNet().state_dict(), str(path))
    with pytest.raises(CheckpointError) as info:
        load_vgg16(path)
    assert "Missing (22)" in str(info.value) and "features.0.weight" in str(info.value)
    assert "style model (TransformerNet)" in str(info.value)
