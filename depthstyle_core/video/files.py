"""Video files in and out with PyAV (FFmpeg), frame by frame so memory does not grow with a clip.

Frames come out as ``[1,3,H,W]`` float32 0..1 with their timestamps; the writer encodes H.264 in an MP4
(or whatever container the name asks for) with the source's timestamps, so the frame count, size and
rate match, and copies the source's audio without re-encoding it when the container takes it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..errors import InputImageError, OutputError

VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v", ".gif"})
CRF = 16
"""x264's constant quality: visually lossless for stylised pictures, about 1/30 of raw size."""


def is_video(path: str | Path) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def _av():  # noqa: ANN202 - the module, imported only when a video is read or written
    try:
        import av
    except ImportError as exc:
        raise InputImageError(
            f"video files need PyAV, which ComfyUI installs too: pip install av ({exc})"
        ) from exc
    return av


@dataclass(frozen=True)
class VideoInfo:
    """What a video file holds: its first video stream's size, rate, frame count (counted when the
    file does not say) and whether it has sound."""

    width: int
    height: int
    rate: Fraction
    frames: int
    time_base: Fraction
    has_audio: bool


@dataclass(frozen=True)
class VideoFrame:
    """One decoded frame: the picture ``[1,3,H,W]`` float32 0..1 and its timestamp in the stream's
    time base (None when the file has none)."""

    picture: Tensor
    pts: int | None
    index: int


def _open(path: Path):  # noqa: ANN202
    av = _av()
    if not path.is_file():
        raise InputImageError(f"video not found: {path}")
    try:
        container = av.open(str(path))
    except av.FFmpegError as exc:
        raise InputImageError(f"{path} is not a video file FFmpeg can read: {exc}") from exc
    if not container.streams.video:
        container.close()
        raise InputImageError(f"{path} has no video stream")
    return container


def probe(path: str | Path) -> VideoInfo:
    """The video's size, rate, frame count and sound (decoding it once when the header has no count)."""
    av = _av()
    path = Path(path)
    with _open(path) as container:
        stream = container.streams.video[0]
        try:
            frames = stream.frames or sum(1 for _ in container.decode(stream))
        except av.FFmpegError as exc:
            raise InputImageError(f"{path}: the video is damaged: {exc}") from exc
        rate = stream.average_rate or stream.guessed_rate or Fraction(25)
        return VideoInfo(
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            rate=Fraction(rate),
            frames=frames,
            time_base=Fraction(stream.time_base or Fraction(1, 1000)),
            has_audio=bool(container.streams.audio),
        )


def read_frames(path: str | Path, every: int = 1) -> Iterator[VideoFrame]:
    """The frames of ``path`` in order, one at a time (every ``every``-th one)."""
    av = _av()
    path = Path(path)
    with _open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        index = -1
        try:
            for index, frame in enumerate(container.decode(stream)):
                if index % every:
                    continue
                rgb = frame.to_ndarray(format="rgb24")
                picture = torch.from_numpy(rgb).permute(2, 0, 1).unsqueeze(0).float().div_(255)
                yield VideoFrame(picture, frame.pts, index)
        except av.FFmpegError as exc:
            where = f"after frame {index + 1}" if index >= 0 else "at its first frame"
            raise InputImageError(f"{path}: the video is damaged {where}: {exc}") from exc


class VideoWriter:
    """Writes frames to a video file with the source's size, rate and timestamps, then the source's
    audio up to the last frame written. Closing it (also after an error or Ctrl+C) leaves a playable
    file of what was written. ``full_chroma`` keeps the colour at full resolution (4:4:4)."""

    def __init__(
        self,
        path: str | Path,
        info: VideoInfo,
        audio_from: str | Path | None = None,
        full_chroma: bool = False,
    ) -> None:
        av = _av()
        self.path = Path(path)
        self.info = info
        self.audio_from = Path(audio_from) if audio_from is not None and info.has_audio else None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._container = av.open(str(self.path), mode="w")
        except (OSError, av.FFmpegError) as exc:
            raise OutputError(f"cannot write the video {self.path}: {exc}") from exc
        even = info.width % 2 == 0 and info.height % 2 == 0
        codec = "gif" if self.path.suffix.lower() == ".gif" else "libx264"
        self._stream = self._container.add_stream(codec, rate=info.rate)
        self._stream.width, self._stream.height = info.width, info.height
        self._stream.time_base = info.time_base
        if codec == "libx264":
            # 4:2:0 plays everywhere but halves the colour resolution, and fine colour texture that moves
            # then shimmers (the warping error of a held-still clip rises about 1.4x); 4:4:4 keeps it, and
            # odd-sized clips need it, but browsers and QuickTime do not play it.
            self._stream.pix_fmt = "yuv420p" if even and not full_chroma else "yuv444p"
            self._stream.options = {"crf": str(CRF)}
        else:
            self._stream.pix_fmt = "rgb8"
        self._audio = self._audio_stream()
        self._last_pts: int | None = None
        self.written = 0

    def _audio_stream(self):  # noqa: ANN202
        if self.audio_from is None:
            return None
        with _open(self.audio_from) as source:
            template = source.streams.audio[0]
            try:
                return self._container.add_stream_from_template(template)
            except (ValueError, _av().FFmpegError):
                return None  # a codec this container cannot hold: the video is written without it

    def write(self, picture: Tensor, pts: int | None = None) -> None:
        """Encode one frame ``[1,3,H,W]`` (or ``[3,H,W]``) 0..1 at timestamp ``pts`` (default: the
        next one at the clip's rate)."""
        av = _av()
        image = picture[0] if picture.ndim == 4 else picture
        if tuple(image.shape) != (3, self.info.height, self.info.width):
            raise OutputError(
                f"frame {self.written + 1} is {tuple(image.shape)}, the video is "
                f"{self.info.width}x{self.info.height}"
            )
        array = (image.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0)
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(array.cpu().numpy()), format="rgb24")
        if pts is None:
            step = round(1 / (self.info.rate * self.info.time_base))
            pts = 0 if self._last_pts is None else self._last_pts + step
        frame.pts = pts
        frame.time_base = self.info.time_base
        self._container.mux(self._stream.encode(frame))
        self._last_pts = pts
        self.written += 1

    def close(self) -> None:
        """Flush the encoder, add the audio up to the end of the last frame and finish the file."""
        if self._container is None:
            return
        try:
            self._container.mux(self._stream.encode(None))
            if self._audio is not None and self._last_pts is not None:
                self._copy_audio()
        finally:
            self._container.close()
            self._container = None

    def _copy_audio(self) -> None:
        end = (self._last_pts + round(1 / (self.info.rate * self.info.time_base))) * self.info.time_base
        with _open(self.audio_from) as source:
            stream = source.streams.audio[0]
            for packet in source.demux(stream):
                if packet.dts is None or packet.pts is None:
                    continue
                if packet.pts * stream.time_base >= end:
                    break
                packet.stream = self._audio
                self._container.mux(packet)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
