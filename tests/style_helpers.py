"""Test helpers for stylisation: a random style network that paints with full contrast, photo-like images."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from depthstyle.depthstyle_core.models.transformer_net import TransformerNet, TransformerNetConfig


def lively_net(config: TransformerNetConfig | None = None, seed: int = 0) -> TransformerNet:
    """A random net whose output spans roughly 0..1 (a fresh net's output is almost zero everywhere,
    which would make every comparison pass), with random norm affines."""
    torch.manual_seed(seed)
    net = TransformerNet(config).eval()
    with torch.no_grad():
        for name, param in net.named_parameters():
            if param.ndim == 1 and not name.endswith("conv2d.bias"):
                param.copy_((1.0 if name.endswith("weight") else 0.0) + 0.3 * torch.randn_like(param))
        probe = net(textured_images(1, 64, 64, seed=99))
        scale = 0.25 / probe.std().item()
        net.deconv3.conv2d.weight.mul_(scale)
        net.deconv3.conv2d.bias.mul_(scale).add_(0.5 * 255 - probe.mean().item() * scale * 255)
    return net


def textured_images(batch: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    """Photo-like test images: smooth colour fields plus a little texture."""
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand(batch, 3, max(2, height // 12), max(2, width // 12), generator=gen)
    smooth = F.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=False)
    return (smooth + 0.05 * torch.rand(batch, 3, height, width, generator=gen)).clamp(0, 1)
