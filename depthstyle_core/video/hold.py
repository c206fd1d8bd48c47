"""A stylised clip held still by optical flow, without losing its detail (``frames="flow"``).

A stylisation network redraws its texture for every frame, so on moving things the texture swims even
when a clip's statistics are shared. Blending each frame with the previous *output* warped along the flow
holds it still, but every frame then resamples the last one again and the detail melts away.

Here a frame's output is built from **keyframes**, each resampled **once**: a keyframe is the network's
own result for one frame, and an accumulated map says where every pixel of the current frame was in it
(the frame-to-frame flows chained, each checked). A new keyframe starts every ``key_interval`` frames and
fades in over the next ``key_interval`` frames while the older one fades out, so no pixel is ever drawn
from a map older than twice that, and no keyframe change shows as a jump. The output is ``hold`` x the
keyframes where they can be followed, plus the frame's own result, which alone fills what the keyframes
cannot show (newly uncovered areas, the frame's edges).

A pixel cannot be followed from one frame to the next where the forward and backward flows disagree,
on a motion boundary, where it comes from outside the frame, where its colour changed, or, with depth
maps, where the surface seen now is at another depth than the one seen there before (something nearer
moved away or in front). When most of a frame cannot be followed, it is a scene cut: the keyframes are
dropped and the frame starts afresh.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..errors import OperationCancelled, SettingsError
from .flow import DEFAULT_PRESET, DISFlow
from .warp import consistent, flow_to_grid, identity_grid, inside, sample, warp


@dataclass(frozen=True)
class HoldSettings:
    """How strongly and how long a clip is held (the defaults were measured on rendered and real
    clips, see bench/results/video.md)."""

    hold: float = 0.95
    """Share of the keyframes in the output where they can be followed (0 = the frames as they are)."""
    key_interval: int = 32
    """A new keyframe every this many frames, faded in over as many."""
    cut: float = 0.4
    """A frame is a scene cut when less than this share of it can be followed from the frame before."""
    colour_tolerance: float = 0.1
    """A pixel whose input colour changed by more than this (mean over RGB, 0..1) along the flow is not
    followed."""
    depth_tolerance: float = 0.1
    """With depth maps: a pixel whose depth changed by more than this share of the frame's depth range
    along the flow is not followed."""
    preset: str = DEFAULT_PRESET

    def __post_init__(self) -> None:
        for name in ("hold", "cut", "colour_tolerance", "depth_tolerance"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise SettingsError(f"{name} must be between 0 and 1, got {value}")
        if self.key_interval < 1:
            raise SettingsError(f"key_interval must be at least 1 frame, got {self.key_interval}")


class _Keyframe:
    """One keyframe's picture and input frame, where each pixel of the current frame lies in it, and how
    far that can be trusted (0..1)."""

    def __init__(self, picture: Tensor, source: Tensor) -> None:
        batch, _, height, width = picture.shape
        self.picture = picture
        self.source = source
        self.coords = identity_grid(batch, height, width, picture.device).permute(0, 3, 1, 2).contiguous()
        self.trust = torch.ones((batch, 1, height, width), device=picture.device)
        self.age = 0

    def follow(self, step: Tensor, followed: Tensor, content: Tensor, tolerance: float) -> None:
        """Move on by one frame: ``step`` ``[1,H,W,2]`` says where each pixel was in the frame before,
        ``followed`` ``[1,1,H,W]`` whether that step can be trusted. Where the keyframe's input brought
        here differs from this frame's ``content`` by more than ``tolerance``, the map has drifted (or
        the surface changed): those pixels are no longer trusted."""
        self.coords = sample(self.coords, step)
        source = sample(self.source, self.coords.permute(0, 2, 3, 1))
        same = (source - content).abs().mean(dim=1, keepdim=True) <= tolerance
        self.trust = sample(self.trust, step) * followed * same
        self.age += 1

    def drawn(self) -> Tensor:
        """The keyframe's picture brought to the current frame, resampled once (bicubic)."""
        return sample(self.picture, self.coords.permute(0, 2, 3, 1), mode="bicubic").clamp_(0, 1)


class TemporalHold:
    """Holds a stylised clip still, one frame at a time, with bounded memory: call it with each frame's
    input, its stylised result and optionally its depth map (near = 1), in order."""

    def __init__(self, settings: HoldSettings | None = None, flow: DISFlow | None = None) -> None:
        self.settings = settings or HoldSettings()
        self.flow = flow or DISFlow(self.settings.preset)
        self._keys: list[_Keyframe] = []
        self._previous: tuple[Tensor, np.ndarray, Tensor | None] | None = None
        self.cuts: list[int] = []
        self.frames = 0

    def __call__(self, content: Tensor, styled: Tensor, depth: Tensor | None = None) -> Tensor:
        """The held output ``[1,3,H,W]`` for one frame (``content`` and ``styled`` ``[1,3,H,W]`` 0..1 of
        one size; ``depth`` ``[1,1,H,W]``)."""
        if content.shape[0] != 1 or styled.shape != (1, 3, *content.shape[-2:]):
            raise SettingsError(
                f"one frame at a time: got input {tuple(content.shape)} and result {tuple(styled.shape)}"
            )
        styled = styled.float()
        content = content[:, :3].float().to(styled.device)
        depth = None if depth is None else depth[:, :1].float().to(styled.device)
        grey = self.flow.grey(content)[0]
        previous = self._previous
        self._previous = (content, grey, depth)
        index = self.frames
        self.frames += 1
        if previous is None or previous[0].shape != content.shape:
            return self._start(styled, content)
        followed, step = self._followed(previous, content, grey, depth)
        if float(followed.mean()) < self.settings.cut:
            self.cuts.append(index)
            return self._start(styled, content)
        for key in self._keys:
            key.follow(step, followed, content, self.settings.colour_tolerance)
        last = sample(self._output, step, mode="bicubic").clamp_(0, 1)
        self._output = self._blend(styled, last, followed)
        if self._keys[-1].age >= self.settings.key_interval:
            self._keys = [self._keys[-1], _Keyframe(styled, content)]
        return self._output.clone()

    def _start(self, styled: Tensor, content: Tensor) -> Tensor:
        """A first frame, or the first after a cut: its own result, and the first keyframe."""
        self._keys = [_Keyframe(styled, content)]
        self._output = styled.clone()
        return styled.clone()

    def _followed(
        self,
        previous: tuple[Tensor, np.ndarray, Tensor | None],
        content: Tensor,
        grey: np.ndarray,
        depth: Tensor | None,
    ) -> tuple[Tensor, Tensor]:
        """``[1,1,H,W]`` 1 where a pixel of this frame can be followed to the frame before, else 0; and
        where each pixel was in that frame (``[1,H,W,2]``)."""
        before, before_grey, before_depth = previous
        backward = self.flow.between(grey, before_grey).to(content.device)
        forward = self.flow.between(before_grey, grey).to(content.device)
        step = flow_to_grid(backward)
        ok = consistent(backward, forward) & inside(step)
        colour_change = (warp(before, backward) - content).abs().mean(dim=1, keepdim=True)
        ok &= colour_change <= self.settings.colour_tolerance
        if depth is not None and before_depth is not None:
            ok &= _same_depth(depth, warp(before_depth, backward), ok, self.settings.depth_tolerance)
        return ok.float(), step

    def _blend(self, styled: Tensor, last: Tensor, followed: Tensor) -> Tensor:
        """``hold`` x what can be followed, the rest from the frame's own result ``styled``. What can be
        followed is the keyframes (weighted by fade and trust) and, where they cannot be followed but the
        last frame can, the last output brought here (``last``)."""
        if len(self._keys) == 1:
            shares = [1.0]
        else:
            fade_in = self._keys[1].age / self.settings.key_interval
            shares = [1.0 - fade_in, fade_in]
        total = torch.zeros_like(styled)
        weight = torch.zeros_like(styled[:, :1])
        for key, share in zip(self._keys, shares, strict=True):
            if share == 0:
                continue
            w = key.trust * share
            total += key.drawn() * w
            weight += w
        rest = (1 - weight) * followed
        held = (total + last * rest) / (weight + rest).clamp_min(1e-6)
        amount = self.settings.hold * (weight + rest)
        return (held * amount + styled * (1 - amount)).clamp_(0, 1)


def _same_depth(depth: Tensor, before: Tensor, usable: Tensor, tolerance: float) -> Tensor:
    """True where ``depth`` and the previous frame's depth brought here (``before``) agree, after fitting
    the scale and shift that relate them (monocular depth has neither fixed) over the ``usable`` pixels."""
    mask = usable.flatten()
    x, y = before.flatten()[mask].double(), depth.flatten()[mask].double()
    if x.numel() < 16:
        return torch.ones_like(usable)
    design = torch.stack((x, torch.ones_like(x)), dim=1)
    scale, shift = torch.linalg.lstsq(design, y.unsqueeze(1)).solution.flatten().tolist()
    spread = torch.quantile(y.float()[:: max(1, y.numel() // 100_000)], torch.tensor([0.05, 0.95]))
    span = float(spread[1] - spread[0]) or 1.0
    return (before * scale + shift - depth).abs() <= tolerance * span


FrameCallback = Callable[[int, int, Tensor], None]


def hold_still(
    content: Tensor,
    styled: Tensor,
    depth: Tensor | None = None,
    *,
    settings: HoldSettings | None = None,
    on_frame: FrameCallback | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Tensor:
    """A whole clip held still: ``content`` and ``styled`` ``[B,3,H,W]`` (frames in order), ``depth``
    ``[B,1,H,W]`` or None -> ``[B,3,H,W]`` on ``styled``'s device. ``on_frame(done, total, frame)``
    after each frame; ``should_stop()`` True raises :class:`~..errors.OperationCancelled`."""
    if content.shape[0] != styled.shape[0] or content.shape[-2:] != styled.shape[-2:]:
        raise SettingsError(
            f"the input frames {tuple(content.shape)} and their results {tuple(styled.shape)} do not match"
        )
    hold = TemporalHold(settings)
    out = torch.empty_like(styled, dtype=torch.float32)
    total = styled.shape[0]
    for index in range(total):
        if should_stop is not None and should_stop():
            raise OperationCancelled(f"stopped after {index} of {total} frames")
        frame_depth = None if depth is None else depth[index : index + 1]
        out[index : index + 1] = hold(content[index : index + 1], styled[index : index + 1], frame_depth)
        if on_frame is not None:
            on_frame(index + 1, total, out[index])
    return out
