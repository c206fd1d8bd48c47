"""VGG-16 feature extractor for the perceptual losses.

The layers keep torchvision's ``features.{i}`` indices, so torchvision's and timm's ImageNet weights load
unchanged. The network ends at relu5_1 (index 25), the deepest layer any loss uses: training taps
relu1_2, relu2_2, relu3_3 and relu4_3 (Johnson et al.), per-image optimisation taps relu1_1 ... relu5_1
and relu4_2 (Gatys et al.). A forward pass stops at the deepest tap asked for. Inputs are 0..1 RGB; the
ImageNet normalisation happens inside, so no caller can get it wrong.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

import torch
from torch import Tensor, nn

from ..checkpoint import list_safetensors_keys, load_state_dict_strict, read_safetensors_keys
from ..hub.resolve import HubFile, resolve_model_file

VGG16_HUB = HubFile(
    "timm/vgg16.tv_in1k",
    "model.safetensors",
    "3394518cba29aee1ea82a49d971be90d2dd1dab7",
    local_name="vgg16.tv_in1k.safetensors",  # "model.safetensors" in a model folder would be ambiguous
)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TAPS: dict[str, int] = {
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
JOHNSON_TAPS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")
_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512)  # conv1_1 .. conv5_1


class VGG16Features(nn.Module):
    """Frozen VGG-16 ``features[0:26]``: ``[B,3,H,W]`` 0..1 -> {tap name: activation}.

    Parameters never receive gradients, but gradients flow to the input (the stylised image).
    """

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for item in _LAYOUT:
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(channels, int(item), 3, padding=1), nn.ReLU(inplace=False)]
                channels = int(item)
        self.features = nn.Sequential(*layers)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.train(False)

    def forward(self, x01: Tensor, taps: Iterable[str] = JOHNSON_TAPS) -> dict[str, Tensor]:
        """Activations at ``taps``; stops at the deepest requested one (content needs only relu2_2)."""
        wanted = {TAPS[name]: name for name in taps}
        if not wanted:
            raise ValueError(f"ask for at least one of {tuple(TAPS)}")
        h = (x01 - self.mean.to(x01.dtype)) / self.std.to(x01.dtype)
        out: dict[str, Tensor] = {}
        for index, layer in enumerate(self.features[: max(wanted) + 1]):
            h = layer(h)
            if index in wanted:
                out[wanted[index]] = h
        return out


def load_vgg16(
    source: str | os.PathLike | HubFile = VGG16_HUB,
    *,
    model_dirs: Sequence[str | os.PathLike] = (),
    cache_dir: str | os.PathLike | None = None,
    endpoint: str | None = None,
    token: str | bool | None = None,
    download_dir: str | os.PathLike | None = None,
) -> VGG16Features:
    """Load the ImageNet VGG-16 features (frozen, eval mode) from a timm/torchvision-layout safetensors file.

    Only the ``features.*`` tensors up to conv5_1 are read (the 411 MB classifier is never materialised).
    The Hub file, found nowhere, is downloaded into ``download_dir`` as ``VGG16_HUB.local_filename``,
    else into the Hugging Face cache.
    """
    path = resolve_model_file(
        source,
        model_dirs=model_dirs,
        cache_dir=cache_dir,
        endpoint=endpoint,
        token=token,
        download_dir=download_dir,
    )
    model = VGG16Features()
    wanted = set(model.state_dict())
    tensors = read_safetensors_keys(path, prefix="features.")
    state = {key: value.float() for key, value in tensors.items() if key in wanted}
    load_state_dict_strict(
        model, state, what="VGG-16 features", source=str(path), file_keys=list_safetensors_keys(path)
    )
    return model
