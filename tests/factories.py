"""Tiny random-weight models for tests, written as real safetensors files.

The weights carry signal on purpose (fan-in-scaled weights, non-zero biases, layer scales of order one, noisy
norms), so every part of the forward pass changes the output and parity tests can tell implementations apart.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import save_file

from depthstyle.depthstyle_core.models.depth_anything import (
    DepthAnythingConfig,
    DepthAnythingV2,
    default_out_indices,
)

Layout = Literal["original", "hf"]


def tiny_depth_config() -> DepthAnythingConfig:
    """A ~1 M parameter Depth Anything that config_from_state_dict recovers from its shapes."""
    return DepthAnythingConfig(
        embed_dim=128,
        depth=4,
        num_heads=2,
        out_indices=default_out_indices(4),
        neck_channels=(16, 32, 64, 128),
        features=32,
    )


def _fan_in(name: str, shape: tuple[int, ...]) -> int:
    if re.fullmatch(r"depth_head\.resize_layers\.[01]\.weight", name):
        return shape[0]  # transposed conv with stride == kernel: each output pixel sees in_channels inputs
    return math.prod(shape[1:])


def _random_tensor(name: str, shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    randn = torch.randn(shape, generator=gen)
    if name.endswith(("ls1.gamma", "ls2.gamma")):
        return 0.5 + torch.rand(shape, generator=gen)  # layer scale in [0.5, 1.5)
    if re.search(r"norm[12]?\.weight$", name):
        return 1.0 + 0.1 * randn
    if name.endswith(("cls_token", "pos_embed", "mask_token")):
        return 0.5 * randn
    if name.endswith("output_conv2.2.bias"):
        return torch.full(shape, 0.5)  # keeps most of the final ReLU's input positive
    if name.endswith(".bias"):
        return 0.1 * randn
    return randn / math.sqrt(_fan_in(name, shape))


def random_depth_state_dict(
    config: DepthAnythingConfig | None = None, seed: int = 0, layout: Layout = "original"
) -> dict[str, torch.Tensor]:
    """Random float32 weights with signal for `config` (default: tiny), in original or Hub (HF) names."""
    config = config or tiny_depth_config()
    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in DepthAnythingV2(config).state_dict().items()}
    gen = torch.Generator().manual_seed(seed)
    state = {name: _random_tensor(name, shape, gen) for name, shape in shapes.items()}
    return state if layout == "original" else to_hub_layout(state)


_TO_HUB = tuple(
    (re.compile(p), r)
    for p, r in (
        (r"^pretrained\.cls_token$", "backbone.embeddings.cls_token"),
        (r"^pretrained\.mask_token$", "backbone.embeddings.mask_token"),
        (r"^pretrained\.pos_embed$", "backbone.embeddings.position_embeddings"),
        (r"^pretrained\.patch_embed\.proj\.", "backbone.embeddings.patch_embeddings.projection."),
        (r"^pretrained\.blocks\.(\d+)\.attn\.proj\.", r"backbone.encoder.layer.\1.attention.output.dense."),
        (r"^pretrained\.blocks\.(\d+)\.ls([12])\.gamma$", r"backbone.encoder.layer.\1.layer_scale\2.lambda1"),
        (r"^pretrained\.blocks\.(\d+)\.", r"backbone.encoder.layer.\1."),
        (r"^pretrained\.norm\.", "backbone.layernorm."),
        (r"^depth_head\.projects\.(\d)\.", r"neck.reassemble_stage.layers.\1.projection."),
        (r"^depth_head\.resize_layers\.(\d)\.", r"neck.reassemble_stage.layers.\1.resize."),
        (r"^depth_head\.scratch\.output_conv1\.", "head.conv1."),
        (r"^depth_head\.scratch\.output_conv2\.0\.", "head.conv2."),
        (r"^depth_head\.scratch\.output_conv2\.2\.", "head.conv3."),
    )
)


def _hub_name(key: str) -> str:
    if m := re.fullmatch(r"depth_head\.scratch\.layer(\d)_rn\.weight", key):
        return f"neck.convs.{int(m[1]) - 1}.weight"
    if m := re.fullmatch(r"depth_head\.scratch\.refinenet(\d)\.(.*)", key):
        rest = m[2].replace("out_conv.", "projection.")
        rest = re.sub(r"resConfUnit(\d)\.conv(\d)\.", r"residual_layer\1.convolution\2.", rest)
        return f"neck.fusion_stage.layers.{4 - int(m[1])}.{rest}"
    for pattern, replacement in _TO_HUB:
        new, count = pattern.subn(replacement, key)
        if count:
            return new
    raise KeyError(key)


def to_hub_layout(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Original names -> the names stored in the Hub's `*-hf` files (transformers 4.x; q/k/v split)."""
    out: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        if m := re.fullmatch(r"pretrained\.blocks\.(\d+)\.attn\.qkv\.(weight|bias)", key):
            base = f"backbone.encoder.layer.{m[1]}.attention.attention"
            for part, chunk in zip(("query", "key", "value"), tensor.chunk(3, dim=0), strict=True):
                out[f"{base}.{part}.{m[2]}"] = chunk.clone()
        else:
            out[_hub_name(key)] = tensor
    return out


def write_depth_checkpoint(
    path: str | os.PathLike,
    config: DepthAnythingConfig | None = None,
    *,
    seed: int = 0,
    layout: Layout = "original",
    dtype: torch.dtype = torch.float32,
) -> Path:
    """Write random Depth Anything weights as a safetensors file (metadata format=pt, like the Hub files)."""
    state = random_depth_state_dict(config, seed=seed, layout=layout)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.to(dtype).contiguous() for k, v in state.items()}, str(path), metadata={"format": "pt"})
    return path


def write_vgg_checkpoint(path: str | os.PathLike, *, seed: int = 0) -> Path:
    """Random He-scaled VGG-16 ``features.*`` weights (up to conv4_3) under the timm file's key names."""
    from depthstyle.depthstyle_core.models.vgg import VGG16Features

    gen = torch.Generator().manual_seed(seed)
    tensors = {}
    for name, value in VGG16Features().state_dict().items():
        if name.endswith("weight"):
            tensors[name] = torch.randn(value.shape, generator=gen) * math.sqrt(
                2.0 / math.prod(value.shape[1:])
            )
        else:
            tensors[name] = 0.01 * torch.randn(value.shape, generator=gen)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata={"format": "pt"})
    return path


def smooth_images(count: int, height: int, width: int, seed: int) -> torch.Tensor:
    """Photo-like test images: random 4x4 colour layouts, smoothly upsampled, in 0..1."""
    generator = torch.Generator().manual_seed(seed)
    layout = torch.rand(count, 3, 4, 4, generator=generator)
    return F.interpolate(layout, size=(height, width), mode="bicubic", align_corners=False).clamp(0, 1)


def picture(width: int, height: int, seed: int) -> Image.Image:
    """A picture with structure (gradients, a disc, noise), so that losses, depth and edges are not flat."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    disc = ((x - width * 0.6) ** 2 + (y - height * 0.4) ** 2 < (min(width, height) / 4) ** 2).astype(
        np.float32
    )
    rgb = np.stack([x / width, y / height, 0.3 + 0.6 * disc], axis=-1)
    rgb = np.clip(rgb + 0.1 * rng.standard_normal(rgb.shape), 0, 1)
    return Image.fromarray((rgb * 255).astype(np.uint8))


def write_comfy_loss_models(base: str | os.PathLike, depth_seed: int) -> Path:
    """A tiny Depth Anything (under the built-in Small's file name) and a random VGG-16 in a ComfyUI base
    directory's ``models/depthstyle`` folders, where the nodes look first; returns that folder."""
    from depthstyle.depthstyle_core.depth import DEPTH_MODELS
    from depthstyle.depthstyle_core.models.vgg import VGG16_HUB

    models = Path(base) / "models" / "depthstyle"
    write_depth_checkpoint(models / "depth" / DEPTH_MODELS["small"].hub_file.local_filename, seed=depth_seed)
    write_vgg_checkpoint(models / "vgg" / VGG16_HUB.local_filename)
    return models
