"""Style-model files: our safetensors format, community files, wrong files, pickles and conversion."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from depthstyle.depthstyle_core.checkpoint import read_safetensors_metadata
from depthstyle.depthstyle_core.errors import CheckpointError
from depthstyle.depthstyle_core.models.transformer_net import TransformerNet, TransformerNetConfig
from depthstyle.depthstyle_core.style_model import (
    convert_pickle_to_safetensors,
    load_style_model,
    save_style_model,
)

from .factories import write_depth_checkpoint

CONFIGS = [
    TransformerNetConfig(),
    TransformerNetConfig(norm="batch"),
    TransformerNetConfig(upsample="transposed"),
    TransformerNetConfig(output="tanh"),
    TransformerNetConfig(norm="batch", upsample="transposed", output="tanh"),
]


pytestmark = pytest.mark.usefixtures("single_thread")


def random_net(config: TransformerNetConfig | None = None, seed: int = 0) -> TransformerNet:
    """A net whose every tensor (norm affines and batch-norm statistics too) is random."""
    torch.manual_seed(seed)
    net = TransformerNet(config)
    with torch.no_grad():
        for name, tensor in net.state_dict().items():
            if name.endswith("running_var"):
                tensor.copy_(torch.rand_like(tensor) + 0.5)
            elif tensor.is_floating_point() and tensor.ndim == 1:
                tensor.copy_(torch.randn_like(tensor) * 0.3 + (1.0 if name.endswith("weight") else 0.0))
    return net.eval()


def outputs(net: TransformerNet, seed: int = 5) -> torch.Tensor:
    x = torch.rand(1, 3, 20, 16, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return net(x)


def legacy_community_state(net: TransformerNet) -> dict[str, torch.Tensor]:
    """A pytorch/examples state dict as old PyTorch saved it: with in*.running_mean/var buffers."""
    state = {k: v.clone() for k, v in net.state_dict().items()}
    for name in ("in1", "in3", "res2.in1", "res5.in2"):
        channels = state[f"{name}.weight"].shape[0]
        state[f"{name}.running_mean"] = torch.zeros(channels)
        state[f"{name}.running_var"] = torch.ones(channels)
    return state


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"{c.norm}-{c.upsample}-{c.output}")
def test_saved_file_alone_rebuilds_the_architecture_and_weights(tmp_path, config):
    net = random_net(config)
    path = save_style_model(tmp_path / "style.safetensors", net, extra_metadata={"step": "1000"})
    loaded, metadata = load_style_model(path)
    assert loaded.config == config
    assert not loaded.training
    assert metadata["step"] == "1000" and metadata["architecture"] == "TransformerNet"
    assert metadata["net.norm"] == config.norm
    for key, value in net.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    torch.testing.assert_close(outputs(loaded), outputs(net))


def test_save_refuses_metadata_that_would_hide_the_architecture(tmp_path):
    with pytest.raises(ValueError, match="net.norm"):
        save_style_model(tmp_path / "a.safetensors", TransformerNet(), extra_metadata={"net.norm": "batch"})
    with pytest.raises(ValueError, match="strings"):
        save_style_model(tmp_path / "a.safetensors", TransformerNet(), extra_metadata={"step": 3})
    assert not (tmp_path / "a.safetensors").exists()


def test_community_file_without_metadata_and_with_legacy_keys_loads_as_default(tmp_path):
    net = random_net()
    path = tmp_path / "mosaic.safetensors"
    save_file(legacy_community_state(net), str(path))  # no metadata at all
    assert read_safetensors_metadata(path) == {}
    loaded, metadata = load_style_model(path)
    assert loaded.config == TransformerNetConfig()
    assert metadata == {}
    torch.testing.assert_close(outputs(loaded), outputs(net))


def test_model_found_by_name_in_a_model_folder(tmp_path):
    folder = tmp_path / "models" / "depthstyle"
    net = random_net(seed=3)
    save_style_model(folder / "candy.safetensors", net)
    loaded, _ = load_style_model("candy.safetensors", model_dirs=[folder])
    torch.testing.assert_close(outputs(loaded), outputs(net))


def test_depth_model_given_as_style_model_is_refused_with_the_keys(tmp_path):
    path = write_depth_checkpoint(tmp_path / "depth_anything_v2_vits.safetensors")
    with pytest.raises(CheckpointError) as info:
        load_style_model(path)
    message = str(info.value)
    assert str(path) in message
    assert "Missing (62)" in message and "conv1.conv2d.weight" in message
    assert "Unexpected" in message and "depth_head." in message
    assert "Depth Anything V2 (original layout)" in message


def test_wrong_architecture_metadata_is_refused(tmp_path):
    path = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(1)}, str(path), metadata={"architecture": "UNet"})
    with pytest.raises(CheckpointError, match="UNet"):
        load_style_model(path)


def test_batch_norm_file_keeps_its_running_statistics(tmp_path):
    net = random_net(TransformerNetConfig(norm="batch"))
    loaded, _ = load_style_model(save_style_model(tmp_path / "bn.safetensors", net))
    assert torch.equal(loaded.in1.running_var, net.in1.running_var)
    assert loaded.in1.running_var.min() >= 0.5  # not reset to ones: the file's values


def test_truncated_community_file_names_the_missing_keys(tmp_path):
    state = TransformerNet().state_dict()
    del state["res3.conv2.conv2d.weight"]
    path = tmp_path / "broken.safetensors"
    save_file(state, str(path))
    with pytest.raises(CheckpointError, match=r"Missing \(1\): res3\.conv2\.conv2d\.weight"):
        load_style_model(path)


def test_pickles_are_refused_by_name_and_by_content(tmp_path):
    pth = tmp_path / "candy.pth"
    torch.save(TransformerNet().state_dict(), pth)
    with pytest.raises(CheckpointError, match="depthstyle convert"):
        load_style_model(pth)
    disguised = tmp_path / "candy.safetensors"
    disguised.write_bytes(pth.read_bytes())
    with pytest.raises(CheckpointError, match="pickled"):
        load_style_model(disguised)


def test_convert_a_community_pickle(tmp_path):
    net = random_net(seed=7)
    pth = tmp_path / "udnie.pth"
    torch.save(legacy_community_state(net), pth)
    out = convert_pickle_to_safetensors(pth, tmp_path / "udnie.safetensors")
    assert out == tmp_path / "udnie.safetensors"
    loaded, metadata = load_style_model(out)
    assert metadata["converted_from"] == "udnie.pth"
    assert metadata["architecture"] == "TransformerNet"
    assert "in1.running_mean" not in loaded.state_dict()
    torch.testing.assert_close(outputs(loaded), outputs(net))


def test_convert_refuses_pickled_code_and_wrong_models(tmp_path):
    evil = tmp_path / "evil.pth"
    torch.save({"conv1.conv2d.weight": torch.zeros(1), "payload": _Payload()}, evil)
    with pytest.raises(CheckpointError, match="evil.pth"):
        convert_pickle_to_safetensors(evil, tmp_path / "evil.safetensors")
    other = tmp_path / "resnet.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, other)
    with pytest.raises(CheckpointError, match="Unexpected"):
        convert_pickle_to_safetensors(other, tmp_path / "resnet.safetensors")
    assert not (tmp_path / "evil.safetensors").exists() and not (tmp_path / "resnet.safetensors").exists()


class _Payload:
    """An arbitrary object: weights_only unpickling must refuse to rebuild it."""
