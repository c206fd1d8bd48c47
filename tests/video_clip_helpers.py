"""Test helpers for video files: small clips of a textured picture panning by a known step, written with
PyAV (H.264 in MP4 or Matroska, with an AAC sine track), and what a file's audio holds."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
import torch.nn.functional as F

SAMPLE_RATE = 48000
AAC_FRAME = 1024


def pan_frames(count: int, width: int = 64, height: int = 48, shift: int = 2, seed: int = 3) -> torch.Tensor:
    """``count`` frames ``[N,3,H,W]`` of one textured picture moving left by ``shift`` pixels a frame,
    rounded to 8-bit levels. Soft colours and a grey grain: H.264 4:2:0 keeps them to about 3 levels."""
    gen = torch.Generator().manual_seed(seed)
    wide = width + shift * count
    coarse = torch.rand(1, 3, max(2, height // 12), max(2, wide // 12), generator=gen)
    smooth = F.interpolate(coarse, size=(height, wide), mode="bicubic", align_corners=False)[0]
    grain = 0.08 * torch.rand(1, height, wide, generator=gen)  # grey: fine texture in the brightness only
    canvas = (0.3 + 0.4 * smooth + grain).clamp(0, 1)
    frames = torch.stack([canvas[:, :, i * shift : i * shift + width] for i in range(count)])
    return (frames * 255).round() / 255


def write_clip(
    path: Path,
    frames: torch.Tensor,
    rate: Fraction = Fraction(24),
    audio: bool = True,
) -> Path:
    """``frames`` ``[N,3,H,W]`` (even sizes) as H.264 4:2:0 at ``rate``, with a 440 Hz mono AAC sine as
    long as the video when ``audio``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=rate)
        video.width, video.height, video.pix_fmt = frames.shape[-1], frames.shape[-2], "yuv420p"
        video.options = {"crf": "12"}
        sound = out.add_stream("aac", rate=SAMPLE_RATE, layout="mono") if audio else None
        for frame in frames:
            array = (frame.permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
            out.mux(video.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format="rgb24")))
        out.mux(video.encode(None))
        if sound is not None:
            samples = int(SAMPLE_RATE * len(frames) / rate)
            wave = (0.3 * np.sin(2 * np.pi * 440 * np.arange(samples) / SAMPLE_RATE)).astype(np.float32)
            for start in range(0, samples, AAC_FRAME):
                chunk = np.ascontiguousarray(wave[None, start : start + AAC_FRAME])
                piece = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
                piece.sample_rate, piece.pts = SAMPLE_RATE, start
                out.mux(sound.encode(piece))
            out.mux(sound.encode(None))
    return path


def audio_span(path: Path) -> tuple[int, Fraction, Fraction]:
    """(audio packets, the start of the last one, the end of the last one) in seconds; (0, 0, 0) without
    sound."""
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return 0, Fraction(0), Fraction(0)
        stream = container.streams.audio[0]
        packets = [p for p in container.demux(stream) if p.pts is not None and p.size]
        base = Fraction(stream.time_base)
    last = packets[-1]
    return len(packets), last.pts * base, (last.pts + last.duration) * base


def pixel_format(path: Path) -> str:
    with av.open(str(path)) as container:
        return container.streams.video[0].codec_context.pix_fmt


def mean_abs_255(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean absolute difference in 8-bit levels."""
    return (a - b).abs().mean().item() * 255
