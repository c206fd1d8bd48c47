"""Depth Anything V2 (DINOv2 ViT-14 encoder + DPT head) in plain PyTorch.

The module tree reproduces the original repository's parameter names (``pretrained.*``, ``depth_head.*``), so
the original-layout safetensors files load unchanged. Hugging Face files (transformers 4.x names as stored
on the Hub, or transformers 5.x in-memory names) load through :func:`to_original_layout`, the one key-mapping
function. The forward pass matches ``transformers.DepthAnythingForDepthEstimation`` (relative depth),
including its bicubic position-embedding interpolation to ``size=(ph, pw)``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..checkpoint import describe_checkpoint, load_state_dict_strict
from ..errors import CheckpointError

PATCH_SIZE = 14
POS_GRID = 37  # pos_embed covers a 518x518 image: 37x37 patches + the class token
LAYER_NORM_EPS = 1e-6
HEAD_HIDDEN = 32  # channels of the last 3x3 conv of the output head, the same for every size

_VARIANTS = {
    "small": dict(embed_dim=384, depth=12, num_heads=6, neck_channels=(48, 96, 192, 384), features=64),
    "base": dict(embed_dim=768, depth=12, num_heads=12, neck_channels=(96, 192, 384, 768), features=128),
    "large": dict(embed_dim=1024, depth=24, num_heads=16, neck_channels=(256, 512, 1024, 1024), features=256),
}


def default_out_indices(depth: int) -> tuple[int, int, int, int]:
    """The 4 encoder blocks (0-based) whose outputs feed the DPT head, as the released models use them."""
    if depth == 12:
        return (2, 5, 8, 11)
    if depth == 24:
        return (4, 11, 17, 23)
    return tuple((k + 1) * depth // 4 - 1 for k in range(4))  # evenly spaced, ending at the last block


@dataclass(frozen=True)
class DepthAnythingConfig:
    """Architecture hyper-parameters; everything else (patch 14, 518 px pos-embed, eps 1e-6) is fixed."""

    embed_dim: int
    depth: int
    num_heads: int
    out_indices: tuple[int, ...]
    neck_channels: tuple[int, int, int, int]
    features: int
    mlp_ratio: float = 4.0

    @classmethod
    def variant(cls, name: str) -> DepthAnythingConfig:
        """The released Depth Anything V2 sizes: "small", "base" or "large"."""
        try:
            spec = _VARIANTS[name]
        except KeyError:
            choices = ", ".join(_VARIANTS)
            raise ValueError(f"unknown Depth Anything variant {name!r}; choose one of {choices}") from None
        return cls(out_indices=default_out_indices(spec["depth"]), **spec)


# ---------------------------------------------------------------------------------------------------- encoder


class PatchEmbed(nn.Module):
    """14x14 stride-14 convolution that turns an image into a grid of patch tokens."""

    def __init__(self, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, embed_dim, kernel_size=PATCH_SIZE, stride=PATCH_SIZE)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class Attention(nn.Module):
    """Multi-head self-attention with a fused qkv projection (rows: q, then k, then v)."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, d // self.num_heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class Mlp(nn.Module):
    """Two-layer MLP with exact GELU."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class LayerScale(nn.Module):
    """Learned per-channel scale of a residual branch."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gamma


class Block(nn.Module):
    """Pre-norm transformer block: x + ls1(attn(norm1 x)), then x + ls2(mlp(norm2 x))."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.attn = Attention(dim, num_heads)
        self.ls1 = LayerScale(dim)
        self.norm2 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.mlp = Mlp(dim, round(dim * mlp_ratio))
        self.ls2 = LayerScale(dim)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class DinoVisionTransformer(nn.Module):
    """DINOv2 ViT-14 encoder returning the final-normed patch grids of the selected blocks."""

    def __init__(self, config: DepthAnythingConfig) -> None:
        super().__init__()
        d = config.embed_dim
        self.out_indices = tuple(config.out_indices)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pos_embed = nn.Parameter(torch.zeros(1, POS_GRID * POS_GRID + 1, d))
        self.mask_token = nn.Parameter(torch.zeros(1, d))  # masked pre-training only; kept for strict loading
        self.patch_embed = PatchEmbed(d)
        self.blocks = nn.ModuleList(Block(d, config.num_heads, config.mlp_ratio) for _ in range(config.depth))
        self.norm = nn.LayerNorm(d, eps=LAYER_NORM_EPS)

    def _pos_embed(self, ph: int, pw: int) -> Tensor:
        """Position embeddings for a ph x pw grid: bicubic resize of the 37x37 table, as transformers does."""
        if ph == pw == POS_GRID:
            return self.pos_embed
        cls_pos, grid = self.pos_embed[:, :1], self.pos_embed[:, 1:]
        d = grid.shape[-1]
        grid = grid.reshape(1, POS_GRID, POS_GRID, d).permute(0, 3, 1, 2)
        grid = F.interpolate(grid.float(), size=(ph, pw), mode="bicubic", align_corners=False).to(grid.dtype)
        return torch.cat((cls_pos, grid.permute(0, 2, 3, 1).reshape(1, ph * pw, d)), dim=1)

    def forward(self, x: Tensor) -> list[Tensor]:
        b, _, h, w = x.shape
        ph, pw = h // PATCH_SIZE, w // PATCH_SIZE
        tokens = self.patch_embed(x)
        tokens = torch.cat((self.cls_token.expand(b, -1, -1), tokens), dim=1) + self._pos_embed(ph, pw)
        grids = []
        for i, block in enumerate(self.blocks):
            tokens = block(tokens)
            if i in self.out_indices:
                patches = self.norm(tokens)[:, 1:]
                grids.append(patches.reshape(b, ph, pw, -1).permute(0, 3, 1, 2))
        return grids


# ------------------------------------------------------------------------------------------------- DPT head


class ResidualConvUnit(nn.Module):
    """relu -> conv3x3 -> relu -> conv3x3, plus the input."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, 3, padding=1)
        self.conv2 = nn.Conv2d(features, features, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


class FeatureFusionBlock(nn.Module):
    """Adds the refined skip feature, refines, upsamples (bilinear, align_corners) and projects 1x1."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.out_conv = nn.Conv2d(features, features, 1)
        self.resConfUnit1 = ResidualConvUnit(features)  # unused by refinenet4 (one input), but in checkpoints
        self.resConfUnit2 = ResidualConvUnit(features)

    def forward(self, x: Tensor, skip: Tensor | None = None, size: tuple[int, int] | None = None) -> Tensor:
        if skip is not None:
            x = x + self.resConfUnit1(skip)
        x = self.resConfUnit2(x)
        if size is None:
            x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=True)
        else:
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=True)
        return self.out_conv(x)


class Scratch(nn.Module):
    """Per-level 3x3 projections to `features`, the four fusion blocks and the output convolutions."""

    def __init__(self, neck_channels: tuple[int, int, int, int], features: int) -> None:
        super().__init__()
        self.layer1_rn = nn.Conv2d(neck_channels[0], features, 3, padding=1, bias=False)
        self.layer2_rn = nn.Conv2d(neck_channels[1], features, 3, padding=1, bias=False)
        self.layer3_rn = nn.Conv2d(neck_channels[2], features, 3, padding=1, bias=False)
        self.layer4_rn = nn.Conv2d(neck_channels[3], features, 3, padding=1, bias=False)
        self.refinenet1 = FeatureFusionBlock(features)
        self.refinenet2 = FeatureFusionBlock(features)
        self.refinenet3 = FeatureFusionBlock(features)
        self.refinenet4 = FeatureFusionBlock(features)
        self.output_conv1 = nn.Conv2d(features, features // 2, 3, padding=1)
        self.output_conv2 = nn.Sequential(
            nn.Conv2d(features // 2, HEAD_HIDDEN, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(HEAD_HIDDEN, 1, 1),
            nn.ReLU(),
            nn.Identity(),
        )


class DPTHead(nn.Module):
    """Reassembles the four token grids at 4x, 2x, 1x and 1/2x the patch grid; fuses them coarse to fine."""

    def __init__(self, config: DepthAnythingConfig) -> None:
        super().__init__()
        d, oc = config.embed_dim, config.neck_channels
        self.projects = nn.ModuleList(nn.Conv2d(d, c, 1) for c in oc)
        self.resize_layers = nn.ModuleList(
            [
                nn.ConvTranspose2d(oc[0], oc[0], kernel_size=4, stride=4),
                nn.ConvTranspose2d(oc[1], oc[1], kernel_size=2, stride=2),
                nn.Identity(),
                nn.Conv2d(oc[3], oc[3], kernel_size=3, stride=2, padding=1),
            ]
        )
        self.scratch = Scratch(oc, config.features)

    def forward(self, grids: list[Tensor], height: int, width: int) -> Tensor:
        s = self.scratch
        rn = (s.layer1_rn, s.layer2_rn, s.layer3_rn, s.layer4_rn)
        l1, l2, l3, l4 = (rn[i](self.resize_layers[i](self.projects[i](g))) for i, g in enumerate(grids))
        path = s.refinenet4(l4, size=l3.shape[2:])
        path = s.refinenet3(path, l3, size=l2.shape[2:])
        path = s.refinenet2(path, l2, size=l1.shape[2:])
        path = s.refinenet1(path, l1)
        out = s.output_conv1(path)
        out = F.interpolate(out, size=(height, width), mode="bilinear", align_corners=True)
        return F.relu(s.output_conv2(out))


class DepthAnythingV2(nn.Module):
    """Relative inverse depth (larger = nearer) from an ImageNet-normalised image; original key layout."""

    def __init__(self, config: DepthAnythingConfig) -> None:
        super().__init__()
        if len(config.out_indices) != 4 or not all(0 <= i < config.depth for i in config.out_indices):
            raise ValueError(f"out_indices must be 4 blocks below {config.depth}: {config.out_indices}")
        if config.embed_dim % config.num_heads:
            raise ValueError(f"embed_dim {config.embed_dim} is not divisible by num_heads {config.num_heads}")
        self.config = config
        self.pretrained = DinoVisionTransformer(config)
        self.depth_head = DPTHead(config)

    def forward(self, x: Tensor) -> Tensor:
        """ImageNet-normalised [B,3,H,W] (H, W multiples of 14) -> [B,1,H,W], >= 0."""
        h, w = x.shape[-2:]
        if x.ndim != 4 or x.shape[1] != 3 or h % PATCH_SIZE or w % PATCH_SIZE:
            raise ValueError(
                f"Depth Anything expects [B,3,H,W] with H and W multiples of {PATCH_SIZE}, "
                f"got {tuple(x.shape)}"
            )
        return self.depth_head(self.pretrained(x), h, w)


# ------------------------------------------------------------------------------------------------ key mapping

_BLOCK = r"backbone\.encoder\.layer\.(\d+)\."
_RENAMES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), replacement)
    for pattern, replacement in (
        (r"^backbone\.embeddings\.cls_token$", "pretrained.cls_token"),
        (r"^backbone\.embeddings\.mask_token$", "pretrained.mask_token"),
        (r"^backbone\.embeddings\.position_embeddings$", "pretrained.pos_embed"),
        (r"^backbone\.embeddings\.patch_embeddings\.projection\.", "pretrained.patch_embed.proj."),
        (rf"^{_BLOCK}(norm[12]|mlp\.fc[12])\.", r"pretrained.blocks.\1.\2."),
        (rf"^{_BLOCK}attention\.(?:output\.dense|o_proj)\.", r"pretrained.blocks.\1.attn.proj."),
        (rf"^{_BLOCK}layer_scale([12])\.lambda1$", r"pretrained.blocks.\1.ls\2.gamma"),
        (r"^backbone\.layernorm\.", "pretrained.norm."),
        (r"^neck\.reassemble_stage\.layers\.(\d)\.projection\.", r"depth_head.projects.\1."),
        (r"^neck\.reassemble_stage\.layers\.(\d)\.resize\.", r"depth_head.resize_layers.\1."),
        (r"^head\.conv1\.", "depth_head.scratch.output_conv1."),
        (r"^head\.conv2\.", "depth_head.scratch.output_conv2.0."),
        (r"^head\.conv3\.", "depth_head.scratch.output_conv2.2."),
    )
)
_NECK_CONV = re.compile(r"^neck\.convs\.(\d)\.weight$")
_FUSION = re.compile(r"^neck\.fusion_stage\.layers\.(\d)\.(.*)$")
_FUSION_PARTS = (
    (re.compile(r"^projection\."), "out_conv."),
    (re.compile(r"^residual_layer([12])\.convolution([12])\."), r"resConfUnit\1.conv\2."),
)
# transformers 4.x (Hub files) and 5.x (in memory) names of the separate q/k/v projections
_QKV = re.compile(rf"^{_BLOCK}attention\.(?:attention\.(query|key|value)|(q|k|v)_proj)\.(weight|bias)$")
_QKV_ORDER = {"query": 0, "q": 0, "key": 1, "k": 1, "value": 2, "v": 2}


def _rename(key: str) -> str:
    """Original name of one non-attention-input key; unknown keys come back unchanged."""
    for pattern, replacement in _RENAMES:
        new, count = pattern.subn(replacement, key)
        if count:
            return new
    if m := _NECK_CONV.match(key):
        return f"depth_head.scratch.layer{int(m[1]) + 1}_rn.weight"
    if m := _FUSION.match(key):
        for pattern, replacement in _FUSION_PARTS:
            rest, count = pattern.subn(replacement, m[2])
            if count:
                return f"depth_head.scratch.refinenet{4 - int(m[1])}.{rest}"
    return key


def to_original_layout(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Map a Depth Anything state dict to the original names (``pretrained.*``, ``depth_head.*``).

    Accepts original names (returned as they are), Hugging Face Hub names (transformers 4.x:
    ``attention.attention.{query,key,value}``, ``attention.output.dense``) and transformers 5.x names
    (``attention.{q,k,v,o}_proj``). Separate q/k/v projections are concatenated into ``attn.qkv``. Keys that
    match nothing, and q/k/v sets with a part missing, are passed through so strict loading reports them.
    """
    out: dict[str, Tensor] = {}
    qkv_parts: dict[tuple[str, str], dict[int, tuple[str, Tensor]]] = {}
    for key, tensor in state_dict.items():
        if m := _QKV.match(key):
            slot = _QKV_ORDER[m[2] or m[3]]
            qkv_parts.setdefault((m[1], m[4]), {})[slot] = (key, tensor)
        else:
            out[_rename(key)] = tensor
    for (block, kind), parts in qkv_parts.items():
        if sorted(parts) == [0, 1, 2]:
            fused = torch.cat([parts[i][1] for i in range(3)], dim=0)
            out[f"pretrained.blocks.{block}.attn.qkv.{kind}"] = fused
        else:
            out.update(parts.values())
    return out


# ----------------------------------------------------------------------------------------------- construction


def _shape(state_dict: Mapping[str, Tensor], key: str) -> tuple[int, ...]:
    if key not in state_dict:
        raise CheckpointError(f"not a Depth Anything checkpoint: key {key!r} is missing")
    return tuple(state_dict[key].shape)


def config_from_state_dict(state_dict: Mapping[str, Tensor]) -> DepthAnythingConfig:
    """Infer the architecture from tensor shapes (any accepted layout; meta tensors work).

    Heads are embed_dim // 64 (head dim 64 in every released size); the tapped blocks follow
    :func:`default_out_indices`.
    """
    sd = to_original_layout(state_dict)
    embed_dim = _shape(sd, "pretrained.cls_token")[-1]
    block_ids = {int(m[1]) for k in sd if (m := re.match(r"^pretrained\.blocks\.(\d+)\.", k))}
    depth = max(block_ids) + 1 if block_ids else 0
    if depth < 4:
        raise CheckpointError(f"not a Depth Anything checkpoint: {depth} encoder blocks, 4 or more needed")
    hidden = _shape(sd, "pretrained.blocks.0.mlp.fc1.weight")[0]
    neck = tuple(_shape(sd, f"depth_head.projects.{i}.weight")[0] for i in range(4))
    features = _shape(sd, "depth_head.scratch.layer1_rn.weight")[0]
    return DepthAnythingConfig(
        embed_dim=embed_dim,
        depth=depth,
        num_heads=max(1, embed_dim // 64),
        out_indices=default_out_indices(depth),
        neck_channels=neck,  # type: ignore[arg-type]
        features=features,
        mlp_ratio=hidden / embed_dim,
    )


def build_depth_anything(state_dict: Mapping[str, Tensor], *, source: str = "<memory>") -> DepthAnythingV2:
    """Build a float32 model in eval mode from a state dict of any accepted layout (strict loading).

    fp16/bf16 files are cast to float32. The module is allocated without initialisation: strict loading
    overwrites every parameter, so random init of up to 335 M parameters would be wasted time.
    """
    sd = {k: (v.float() if v.is_floating_point() else v) for k, v in to_original_layout(state_dict).items()}
    try:
        config = config_from_state_dict(sd)
    except CheckpointError as err:
        looks_like = describe_checkpoint(state_dict)
        hint = f" This file looks like: {looks_like}." if looks_like else ""
        raise CheckpointError(f"{source}: {err}.{hint}") from None
    with torch.device("meta"):
        model = DepthAnythingV2(config)
    model.to_empty(device="cpu")
    load_state_dict_strict(model, sd, what="Depth Anything V2", source=source, file_keys=state_dict.keys())
    return model.train(False)


__all__ = [
    "DepthAnythingConfig",
    "DepthAnythingV2",
    "build_depth_anything",
    "config_from_state_dict",
    "default_out_indices",
    "to_original_layout",
]
