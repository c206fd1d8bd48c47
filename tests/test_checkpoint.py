"""Safetensors reading and atomic writing, refusal of pickles and damaged files, checkpoint recognition,
and strict loading errors that say what is wrong."""

from __future__ import annotations

import json
import os
import pickle
import struct

import pytest
import torch
from safetensors.torch import save, save_file
from torch import nn

from depthstyle.depthstyle_core import checkpoint
from depthstyle.depthstyle_core.checkpoint import (
    describe_checkpoint,
    list_safetensors_keys,
    load_state_dict_strict,
    read_safetensors,
    read_safetensors_keys,
    read_safetensors_metadata,
    write_safetensors_atomic,
)
from depthstyle.depthstyle_core.errors import CheckpointError, ModelNotAvailableError

from .factories import random_depth_state_dict

READERS = [read_safetensors, read_safetensors_keys, read_safetensors_metadata, list_safetensors_keys]
VGG16_CONVS = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
VGG19_CONVS = (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34)


def conv_keys(prefix: str, indices) -> list[str]:
    return [f"{prefix}.{i}.{p}" for i in indices for p in ("weight", "bias")]


def transformer_net_keys() -> list[str]:
    """The 62 key names of pytorch/examples' fast_neural_style TransformerNet."""
    pairs = [("conv1.conv2d", "in1"), ("conv2.conv2d", "in2"), ("conv3.conv2d", "in3")]
    pairs += [(f"res{r}.conv{c}.conv2d", f"res{r}.in{c}") for r in range(1, 6) for c in (1, 2)]
    pairs += [("deconv1.conv2d", "in4"), ("deconv2.conv2d", "in5")]
    modules = [name for pair in pairs for name in pair] + ["deconv3.conv2d"]
    return [f"{m}.{p}" for m in modules for p in ("weight", "bias")]


def vgg16_timm_keys() -> list[str]:
    return conv_keys("features", VGG16_CONVS) + conv_keys("pre_logits", ("fc1", "fc2")) + ["head.fc.weight"]


def test_write_then_read_keeps_values_dtypes_and_metadata(tmp_path):
    tensors = {
        "a": torch.randn(3, 4),
        "b.half": torch.randn(5).half(),
        "c.bf16": torch.randn(2, 2).bfloat16(),
        "d.int": torch.arange(7),
        "e.view": torch.randn(6, 6)[:, 1],  # not contiguous: written as a copy
    }
    path = write_safetensors_atomic(tmp_path / "sub" / "m.safetensors", tensors, {"architecture": "test"})

    assert path == tmp_path / "sub" / "m.safetensors"
    loaded, metadata = read_safetensors(path)
    assert metadata == {"format": "pt", "architecture": "test"}
    assert read_safetensors_metadata(path) == metadata
    assert list_safetensors_keys(path) == sorted(tensors)
    assert loaded.keys() == tensors.keys()
    for key, tensor in tensors.items():
        assert loaded[key].dtype == tensor.dtype and torch.equal(loaded[key], tensor), key


def test_selective_read_returns_only_the_prefix(tmp_path):
    tensors = {key: torch.randn(2) for key in vgg16_timm_keys()}
    path = tmp_path / "vgg.safetensors"
    save_file(tensors, path)

    features = read_safetensors_keys(path, "features.")
    assert sorted(features) == sorted(conv_keys("features", VGG16_CONVS))
    assert all(torch.equal(features[k], tensors[k]) for k in features)
    assert read_safetensors_keys(path, "nothing.") == {}


def test_atomic_write_replaces_the_old_file_and_leaves_nothing_else(tmp_path):
    path = tmp_path / "m.safetensors"
    write_safetensors_atomic(path, {"w": torch.zeros(2)})
    write_safetensors_atomic(path, {"w": torch.ones(3)})
    assert torch.equal(read_safetensors(path)[0]["w"], torch.ones(3))
    assert os.listdir(tmp_path) == ["m.safetensors"]


def test_failed_atomic_write_keeps_the_old_file_and_removes_the_temporary(tmp_path, monkeypatch):
    path = tmp_path / "m.safetensors"
    write_safetensors_atomic(path, {"w": torch.zeros(2)})
    before = path.read_bytes()

    def no_space(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint.os, "replace", no_space)
    with pytest.raises(OSError, match="No space left"):
        write_safetensors_atomic(path, {"w": torch.ones(1000)})
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.safetensors"]


def test_failed_serialisation_leaves_nothing_behind(tmp_path):
    with pytest.raises(TypeError, match="metadata"):
        write_safetensors_atomic(tmp_path / "m.safetensors", {"w": torch.zeros(2)}, {"step": 5})
    assert os.listdir(tmp_path) == []


def truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


@pytest.mark.parametrize(
    "damage",
    [truncated, lambda data: data[:20], lambda data: b"", lambda data: b"<html>Bad gateway</html>" * 4],
    ids=["half", "header-cut", "empty", "html-error-page"],
)
@pytest.mark.parametrize("reader", READERS, ids=lambda f: f.__name__)
def test_damaged_file_is_named_with_what_to_do(tmp_path, damage, reader):
    path = tmp_path / "model.safetensors"
    path.write_bytes(damage(save({"w": torch.randn(64, 64)})))
    with pytest.raises(CheckpointError) as info:
        reader(path)
    message = str(info.value)
    assert f"{path} is damaged" in message
    assert "Delete it and download it again, or export it again" in message


def test_damaged_cached_file_names_the_blob_to_delete(tmp_path):
    blob = tmp_path / "blobs" / "abc123"
    blob.parent.mkdir()
    blob.write_bytes(truncated(save({"w": torch.randn(64, 64)})))
    link = tmp_path / "model.safetensors"
    link.symlink_to(blob)
    with pytest.raises(CheckpointError, match=f"Delete {link} and the cached blob it points to \\({blob}\\)"):
        read_safetensors(link)


@pytest.mark.parametrize(
    "write",
    [
        lambda path: torch.save({"w": torch.zeros(2)}, path),  # zip container, starts with PK
        lambda path: path.write_bytes(pickle.dumps({"w": [0.0]}, protocol=2)),
        lambda path: path.write_bytes(pickle.dumps({"w": [0.0]}, protocol=4)),
    ],
    ids=["torch-zip", "pickle-2", "pickle-4"],
)
@pytest.mark.parametrize("reader", READERS, ids=lambda f: f.__name__)
def test_pickled_bytes_are_refused_without_unpickling(tmp_path, write, reader):
    path = tmp_path / "style.safetensors"
    write(path)
    with pytest.raises(CheckpointError) as info:
        reader(path)
    assert f"depthstyle convert {path} -o {tmp_path / 'style.converted.safetensors'}" in str(info.value)


@pytest.mark.parametrize("suffix", [".pth", ".ckpt", ".pt", ".bin"])
def test_pickle_suffixes_are_refused(tmp_path, suffix):
    path = tmp_path / f"candy{suffix}"
    save_file({"w": torch.zeros(2)}, path)  # even valid safetensors bytes: the suffix says pickle
    target = tmp_path / "candy.safetensors"
    with pytest.raises(CheckpointError, match=f"depthstyle convert {path} -o {target}"):
        read_safetensors(path)


def test_safetensors_header_that_starts_like_a_pickle_is_read(tmp_path):
    """A header length of 0x0280 makes the file start with 0x80 0x02, the pickle protocol-2 opcode."""
    header = {"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "__metadata__": {"pad": ""}}
    size = len(json.dumps(header).encode())
    header["__metadata__"]["pad"] = "x" * (0x280 - size)
    raw = json.dumps(header).encode()
    assert len(raw) == 0x280
    path = tmp_path / "m.safetensors"
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + struct.pack("<2f", 1.5, -2.0))
    assert path.read_bytes()[:2] == b"\x80\x02"

    tensors, metadata = read_safetensors(path)
    assert torch.equal(tensors["w"], torch.tensor([1.5, -2.0]))
    assert len(metadata["pad"]) > 500


@pytest.mark.parametrize("reader", READERS, ids=lambda f: f.__name__)
def test_missing_file_is_named(tmp_path, reader):
    with pytest.raises(ModelNotAvailableError, match=str(tmp_path / "gone.safetensors")):
        reader(tmp_path / "gone.safetensors")


DESCRIBE_CASES = {
    "depth-anything-original": (
        lambda: random_depth_state_dict(layout="original"),
        "Depth Anything V2 (original layout)",
    ),
    "depth-anything-hf": (
        lambda: random_depth_state_dict(layout="hf"),
        "Depth Anything V2 (Hugging Face layout)",
    ),
    "transformer-net": (transformer_net_keys, "style model (TransformerNet)"),
    "vgg16-timm": (vgg16_timm_keys, "VGG-16 (timm/torchvision)"),
    "vgg16-torchvision": (
        lambda: conv_keys("features", VGG16_CONVS) + conv_keys("classifier", (0, 3, 6)),
        "VGG-16 (timm/torchvision)",
    ),
    "vgg19-timm": (
        lambda: conv_keys("features", VGG19_CONVS) + ["head.fc.weight"],
        "VGG-19 (timm/torchvision)",
    ),
    "vgg16-truncated": (
        lambda: conv_keys("features", VGG16_CONVS[:10]),
        "VGG-16 features, truncated (timm/torchvision)",
    ),
    "rrmina": (
        lambda: ["ConvBlock.0.conv.weight", "ResidualBlock.0.x", "DeconvBlock.0.y"],
        "rrmina's layout",
    ),
    "alexnet": (lambda: conv_keys("features", (0, 3, 6, 8, 10)) + conv_keys("classifier", (1, 4, 6)), None),
    "bare": (lambda: ["weight", "bias"], None),
    "empty": (lambda: [], None),
}


@pytest.mark.parametrize(("keys", "expected"), DESCRIBE_CASES.values(), ids=DESCRIBE_CASES.keys())
def test_describe_checkpoint(keys, expected):
    description = describe_checkpoint(keys())
    if expected is None:
        assert description is None
    else:
        assert description is not None and expected in description


def test_transformer_net_key_list_matches_the_reference():
    assert len(transformer_net_keys()) == 62


class Tiny(nn.Module):
    def __init__(self, width: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, width, 3)
        self.norm = nn.BatchNorm2d(width)


def test_strict_load_copies_values_and_casts_dtype():
    source = Tiny()
    state = {k: v.half() if v.is_floating_point() else v for k, v in source.state_dict().items()}
    target = Tiny()
    load_state_dict_strict(target, state, what="a tiny net", source="tiny.safetensors")
    assert torch.equal(target.conv.weight, source.conv.weight.half().float())
    assert target.conv.weight.dtype == torch.float32


def test_strict_load_lists_missing_unexpected_and_wrong_shapes():
    state = Tiny(width=4).state_dict()
    del state["conv.bias"]
    state.update({f"extra.{i}": torch.zeros(1) for i in range(10)})
    target = Tiny()
    before = target.conv.weight.clone()

    with pytest.raises(CheckpointError) as info:
        load_state_dict_strict(target, state, what="a tiny net", source="wrong.safetensors")
    message = str(info.value)
    assert message.startswith(
        "wrong.safetensors does not fit a tiny net: 1 missing keys, 10 unexpected keys, 5 shape mismatches."
    )
    assert "Missing (1): conv.bias\n" in message
    assert "Unexpected (10): " + ", ".join(f"extra.{i}" for i in range(8)) + ", ... and 2 more" in message
    assert "conv.weight: file [4, 2, 3, 3] vs expected [3, 2, 3, 3]" in message
    assert "norm.running_var: file [4] vs expected [3]" in message
    assert "This file looks like" not in message
    assert torch.equal(target.conv.weight, before)  # nothing half-loaded


def test_strict_load_says_what_the_file_looks_like():
    vgg = {key: torch.zeros(1) for key in vgg16_timm_keys()}
    with pytest.raises(CheckpointError, match=r"This file looks like: VGG-16 \(timm/torchvision\)\."):
        load_state_dict_strict(Tiny(), vgg, what="a style model", source="vgg.safetensors")

    # Reading only ``features.*`` from a style model selects nothing; the file's own keys still tell.
    with pytest.raises(CheckpointError, match=r"This file looks like: style model \(TransformerNet\)\."):
        load_state_dict_strict(Tiny(), {}, what="VGG-16", source="candy", file_keys=transformer_net_keys())


def test_strict_load_points_out_an_extra_key_prefix():
    state = {f"module.{k}": v for k, v in Tiny().state_dict().items()}
    with pytest.raises(CheckpointError, match="extra prefix 'module.'"):
        load_state_dict_strict(Tiny(), state, what="a tiny net", source="ddp.safetensors")


def test_atomic_write_gives_the_usual_permissions(tmp_path):
    import stat

    mask = os.umask(0o022)
    try:
        path = write_safetensors_atomic(tmp_path / "perm.safetensors", {"w": torch.zeros(2)})
    finally:
        os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
