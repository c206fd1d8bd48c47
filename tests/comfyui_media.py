"""What the ComfyUI integration tests share: a short video clip to feed ComfyUI's video nodes, decoding
what they save, and reading a run's results."""

from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .comfyui_server import ComfyUIServer
from .style_helpers import textured_images

CLIP = {"frames": 8, "width": 64, "height": 48, "fps": 8, "shift": 4}


def write_clip(path: Path) -> None:
    """A short H.264 clip of a camera pan over one picture (PyAV, which ComfyUI requires)."""
    import av

    frames, width, height, shift = CLIP["frames"], CLIP["width"], CLIP["height"], CLIP["shift"]
    picture = textured_images(1, height, width + (frames - 1) * shift, seed=21)[0].permute(1, 2, 0)
    picture = (picture.numpy() * 255).round().astype(np.uint8)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=CLIP["fps"])
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for k in range(frames):
            crop = np.ascontiguousarray(picture[:, k * shift : k * shift + width])
            for packet in stream.encode(av.VideoFrame.from_ndarray(crop, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def decode(path: Path) -> tuple[torch.Tensor, Fraction]:
    """Frames ``[N,3,H,W]`` in 0..1 and the frame rate, decoded as ComfyUI's video loader does."""
    import av

    with av.open(str(path)) as container:
        frames = [torch.from_numpy(f.to_ndarray(format="rgb24")) / 255.0 for f in container.decode(video=0)]
        rate = Fraction(container.streams.video[0].average_rate)
    return torch.stack(frames).permute(0, 3, 1, 2), rate


def succeeded(entry: dict) -> dict:
    assert entry["status"]["status_str"] == "success", entry["status"]
    return entry


def shown_image(comfy: ComfyUIServer, entry: dict, node_id: str) -> torch.Tensor:
    (image,) = entry["outputs"][node_id]["images"]
    array = np.asarray(Image.open(io.BytesIO(comfy.view(image))).convert("RGB"))
    return torch.from_numpy(array.copy()).permute(2, 0, 1).float() / 255.0
