"""Depth Anything V2: parity with transformers, key mapping, config inference and the released key layout."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
import transformers
from safetensors.torch import load_file

from depthstyle.depthstyle_core.errors import CheckpointError
from depthstyle.depthstyle_core.models.depth_anything import (
    DepthAnythingConfig,
    DepthAnythingV2,
    build_depth_anything,
    config_from_state_dict,
    default_out_indices,
    to_original_layout,
)

from .factories import random_depth_state_dict, tiny_depth_config, to_hub_layout, write_depth_checkpoint

TOLERANCE = 1e-4  # relative max abs difference allowed against transformers
BROKEN = 1e-2  # a deliberately broken model must miss by at least 100x the tolerance


def _hf_config(config: DepthAnythingConfig) -> transformers.DepthAnythingConfig:
    backbone = transformers.Dinov2Config(
        hidden_size=config.embed_dim,
        num_hidden_layers=config.depth,
        num_attention_heads=config.num_heads,
        mlp_ratio=int(config.mlp_ratio),
        image_size=518,
        patch_size=14,
        out_indices=[i + 1 for i in config.out_indices],  # transformers counts the embeddings as stage 0
        reshape_hidden_states=False,
    )
    return transformers.DepthAnythingConfig(
        backbone_config=backbone,
        reassemble_hidden_size=config.embed_dim,
        neck_hidden_sizes=list(config.neck_channels),
        fusion_hidden_size=config.features,
        head_hidden_size=32,
        patch_size=14,
    )


def _transformers_model(folder: Path, config: DepthAnythingConfig, seed: int):
    """transformers' model loaded from a Hub-layout file of our random weights; every key must be used."""
    _hf_config(config).save_pretrained(folder)
    write_depth_checkpoint(folder / "model.safetensors", config, seed=seed, layout="hf")
    model, info = transformers.DepthAnythingForDepthEstimation.from_pretrained(
        folder, output_loading_info=True, attn_implementation="eager"
    )
    assert not any(info.values()), info
    return model.eval()


def _outputs(ours: DepthAnythingV2, reference, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randn(1, 3, height, width, generator=torch.Generator().manual_seed(height * width))
    with torch.no_grad():
        a = ours(x)
        b = reference(pixel_values=x).predicted_depth
    assert a.shape == (1, 1, height, width)
    assert b.shape == (1, height, width)
    return a[:, 0], b


def _relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max()).item()


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> tuple[dict[str, torch.Tensor], object]:
    config = DepthAnythingConfig.variant("small")
    reference = _transformers_model(tmp_path_factory.mktemp("small-hf"), config, seed=1)
    return random_depth_state_dict(config, seed=1), reference


@pytest.mark.parametrize(("height", "width"), [(98, 126), (140, 112)])
def test_small_matches_transformers(small, height, width):
    state, reference = small
    ours, ref = _outputs(build_depth_anything(state), reference, height, width)
    assert (ref > 0).float().mean() > 0.3 and ref.std() > 0.1  # the comparison has signal
    assert _relative_error(ours, ref) <= TOLERANCE


@pytest.mark.parametrize(
    ("config", "height", "width"),
    [(DepthAnythingConfig.variant("base"), 70, 84), (tiny_depth_config(), 518, 518)],
    ids=["base", "tiny-native-grid"],
)
def test_other_sizes_match_transformers(tmp_path, config, height, width):
    reference = _transformers_model(tmp_path, config, seed=2)
    ours = build_depth_anything(random_depth_state_dict(config, seed=2))
    ours, ref = _outputs(ours, reference, height, width)
    assert ref.std() > 0.1
    assert _relative_error(ours, ref) <= TOLERANCE


def _swap_q_and_k(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = dict(state)
    for key, tensor in state.items():
        if ".attn.qkv." in key:
            q, k, v = tensor.chunk(3, dim=0)
            out[key] = torch.cat([k, q, v], dim=0)
    return out


def _layer_scale_one(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: (torch.ones_like(v) if k.endswith("gamma") else v) for k, v in state.items()}


@pytest.mark.parametrize("corrupt", [_swap_q_and_k, _layer_scale_one], ids=["q-k-swapped", "layer-scale-one"])
def test_parity_check_catches_a_broken_model(small, corrupt):
    state, reference = small
    ours, ref = _outputs(build_depth_anything(corrupt(state)), reference, 98, 126)
    assert _relative_error(ours, ref) > BROKEN


def test_hub_and_original_files_give_identical_outputs(tmp_path):
    original = write_depth_checkpoint(tmp_path / "original.safetensors", seed=3)
    hub = write_depth_checkpoint(tmp_path / "hub.safetensors", seed=3, layout="hf")
    hub_state = load_file(hub)
    assert "backbone.encoder.layer.0.attention.attention.query.weight" in hub_state
    a = build_depth_anything(load_file(original), source=str(original))
    b = build_depth_anything(hub_state, source=str(hub))
    x = torch.randn(2, 3, 56, 70, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out_a, out_b = a(x), b(x)
    assert out_a.std() > 0.1
    assert torch.equal(out_a, out_b)


def test_fp16_file_loads_as_float32(tmp_path):
    path = write_depth_checkpoint(tmp_path / "half.safetensors", seed=4, dtype=torch.float16)
    half = load_file(path)
    assert half["pretrained.pos_embed"].dtype == torch.float16
    model = build_depth_anything(half, source=str(path))
    loaded = model.state_dict()
    assert {t.dtype for t in loaded.values()} == {torch.float32}
    assert all(torch.equal(loaded[k], half[k].float()) for k in half)


def test_to_original_layout_maps_hub_names_and_is_idempotent():
    original = random_depth_state_dict(seed=5)
    same = to_original_layout(original)
    assert list(same) == list(original)
    assert all(same[k] is original[k] for k in original)

    from_hub = to_original_layout(to_hub_layout(original))
    assert set(from_hub) == set(original)
    assert all(torch.equal(from_hub[k], original[k]) for k in original)
    again = to_original_layout(from_hub)
    assert all(again[k] is from_hub[k] for k in from_hub)


def test_transformers5_names_map_to_original(tmp_path):
    config = tiny_depth_config()
    in_memory = _transformers_model(tmp_path, config, seed=6).state_dict()  # transformers 5 renames on load
    assert "backbone.encoder.layer.0.attention.q_proj.weight" in in_memory
    assert "backbone.encoder.layer.0.attention.o_proj.bias" in in_memory
    mapped = to_original_layout(in_memory)
    original = random_depth_state_dict(config, seed=6)
    assert set(mapped) == set(original)
    assert all(torch.equal(mapped[k], original[k]) for k in original)


def test_incomplete_qkv_is_passed_through_and_refused():
    hub = to_hub_layout(random_depth_state_dict(seed=7))
    del hub["backbone.encoder.layer.1.attention.attention.key.weight"]
    mapped = to_original_layout(hub)
    assert "pretrained.blocks.1.attn.qkv.weight" not in mapped
    assert "backbone.encoder.layer.1.attention.attention.query.weight" in mapped
    assert "pretrained.blocks.1.attn.qkv.bias" in mapped  # the complete bias set still maps
    with pytest.raises(CheckpointError) as caught:
        build_depth_anything(hub, source="broken.safetensors")
    message = str(caught.value)
    assert "broken.safetensors" in message
    assert "Missing (1): pretrained.blocks.1.attn.qkv.weight" in message
    assert "backbone.encoder.layer.1.attention.attention.query.weight" in message  # reported as unexpected


def test_not_a_depth_checkpoint_is_named():
    convs = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)  # torchvision's VGG-16 feature indices
    vgg = {f"features.{i}.weight": torch.zeros(8, 8, 3, 3) for i in convs}
    with pytest.raises(CheckpointError, match=r"vgg\.safetensors.*pretrained\.cls_token.*looks like: VGG-16"):
        build_depth_anything(vgg, source="vgg.safetensors")


# (tensor count, parameter count, sha256 of the original-name listing, sha256 of the Hub-name listing).
# A listing is "\n".join(f"{key}:{'x'.join(shape)}" for key in sorted(keys)), computed from the reference
# key lists (checkpoints_keys.json: original names byte-size-verified against the files of
# Kijai/DepthAnythingV2-safetensors; Hub names as stored in depth-anything/Depth-Anything-V2-*-hf).
RELEASED = {
    "small": (
        239,
        24_785_089,
        "8dfdca9de55d64f3fd4263b6577b03e679dfb495032b11bb5b226ab2bdfb95f1",
        "0504fe0e07350e97e6e5de4e6e54d5bb4c99a0f3e181076b3a8c49028cb864d2",
    ),
    "base": (
        239,
        97_470_785,
        "ab3ba2505d1e3e586dbb8f828e7804c6ef66df74351cc0af45120f0de698dc08",
        "d51fd04afecb0948b436dcdc22d9506853b9992be40ddc5d118cc83b50e70a2c",
    ),
    "large": (
        407,
        335_315_649,
        "9f9a232ada123520b71d8fd5144084ac60e6702aa786ca5026632bc575102f70",
        "36ae11d014048fdab81508b96eabc6bde704d6ab506e40c3dca78d1b01190f0a",
    ),
}


def _listing_hash(state: dict[str, torch.Tensor]) -> str:
    listing = "\n".join(f"{k}:{'x'.join(map(str, state[k].shape))}" for k in sorted(state))
    return hashlib.sha256(listing.encode()).hexdigest()


def _meta_state(name: str) -> dict[str, torch.Tensor]:
    with torch.device("meta"):
        return dict(DepthAnythingV2(DepthAnythingConfig.variant(name)).state_dict())


@pytest.mark.parametrize("name", list(RELEASED))
def test_module_keys_match_released_checkpoints(name):
    count, params, original_hash, hub_hash = RELEASED[name]
    state = _meta_state(name)
    assert len(state) == count
    assert sum(t.numel() for t in state.values()) == params
    assert state["pretrained.pos_embed"].shape[1] == 1370
    assert "pretrained.mask_token" in state
    assert "depth_head.scratch.refinenet4.resConfUnit1.conv1.weight" in state
    assert _listing_hash(state) == original_hash
    assert _listing_hash(to_hub_layout(state)) == hub_hash


@pytest.mark.parametrize("name", list(RELEASED))
def test_config_from_state_dict_recovers_released_sizes(name):
    state = _meta_state(name)
    expected = DepthAnythingConfig.variant(name)
    assert config_from_state_dict(state) == expected
    assert config_from_state_dict(to_hub_layout(state)) == expected


def test_variants_and_tapped_blocks():
    assert DepthAnythingConfig.variant("large").out_indices == (4, 11, 17, 23)
    assert DepthAnythingConfig.variant("base").num_heads == 12
    assert default_out_indices(12) == (2, 5, 8, 11)
    assert default_out_indices(40) == (9, 19, 29, 39)
    assert default_out_indices(4) == (0, 1, 2, 3)
    assert config_from_state_dict(random_depth_state_dict(seed=8)) == tiny_depth_config()
    with pytest.raises(ValueError, match="giant"):
        DepthAnythingConfig.variant("giant")


def test_model_is_eval_differentiable_and_checks_input_size():
    model = build_depth_anything(random_depth_state_dict(seed=9))
    assert not model.training
    x = torch.randn(1, 3, 42, 56, requires_grad=True)
    model(x).mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="multiples of 14"):
        model(torch.zeros(1, 3, 50, 56))
