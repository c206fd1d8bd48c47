"""Stylise images with any painting, without training: optimise the pixels themselves.

The method of Gatys et al. (2016), which fast style transfer approximates, with the depth loss of Liu et
al. (2017): the image is changed step by step until its VGG-16 style statistics match the painting's
while its content features and its Depth Anything depth map stay those of the photo. Gradients flow
through both networks into the pixels. Work goes coarse to fine (see :mod:`.plan`); every
setting is in :class:`~.config.OptimizeConfig` and the scale-free weighting is explained in
:mod:`.objective`.

On CUDA the networks run under bf16 autocast (Gram matrices and reductions stay fp32) with
channels-last images, and the loss is only checked for NaN/inf at preview steps and scale ends, so
the device is not waited for every step. On the CPU everything is fp32 and deterministic for a seed.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from ...depthstyle_core.depth import DepthEstimator
from ...depthstyle_core.errors import InputImageError, OptimizationError, OptimizationStopped, SettingsError
from ...depthstyle_core.images import to_rgb
from ...depthstyle_core.masks import fit_mask
from ...depthstyle_core.models.depth_anything import DepthAnythingV2
from ...depthstyle_core.models.vgg import VGG16Features
from ...depthstyle_core.stylize import blend_with_content
from ..run.loss_networks import autograd_ready, depth_network, device_precision
from .config import OptimizeConfig
from .objective import ScaleObjective, resize
from .plan import SizePlan, plan_sizes

ProgressCallback = Callable[[int, int, "Tensor | None"], None]
StopCallback = Callable[[], bool]
_FP32_ADVICE = (
    " It ran in bf16: run it in fp32 (on the command line --precision fp32; ComfyUI chooses the "
    "precision itself, start it with --force-fp32)."
)


def optimize_style(
    content: Tensor,
    style: Tensor | Sequence[Tensor],
    *,
    vgg: VGG16Features,
    depth_model: DepthAnythingV2 | DepthEstimator | None = None,
    config: OptimizeConfig | None = None,
    device: torch.device | str | None = None,
    mask: Tensor | None = None,
    depth_map: Tensor | None = None,
    on_progress: ProgressCallback | None = None,
    should_stop: StopCallback | None = None,
) -> Tensor:
    """Stylise ``content`` (``[B,C,H,W]`` 0..1, C = 1..4; a batch is optimised together) with ``style``.

    ``style``: one image ``[1,C,H,W]``, a batch of styles of one size ``[S,C,H,W]``, or a list of images
    of any sizes, blended with ``config.style_weights``. ``vgg``: the loss network (``load_vgg16()``).
    ``depth_model``: a Depth Anything network or estimator, needed when ``config.depth_weight > 0`` (set
    it to 0 to optimise without the depth loss). ``device`` defaults to the VGG's; the caller's networks
    are not moved to another device (copies are). Returns ``[B,3,h,w]`` float32 0..1 on the content's
    device, ``h, w`` as :func:`~.plan.output_size` says. ``mask`` (1 = full style, 0 = the
    photo; one for the batch or one per image, resized to the result) makes ``strength`` per pixel, as
    in ``stylize``: where it is 0 the result is the photo at the result's size, exactly. ``depth_map``
    (``[B,1,H,W]``, near = 1, e.g. from :func:`~...depthstyle_core.depth_maps.depth_from_map`) replaces
    the content's depth as the target of the depth loss; the depth model still measures the result's.

    ``on_progress(done, total, preview)`` runs after every step (``preview``: the current result of the
    first image, ``[1,3,h,w]`` on the CPU, every ``preview_every`` steps and at the end of each scale).
    ``should_stop()`` is asked before every step; True raises :class:`OptimizationStopped` carrying the
    picture so far. A NaN/inf loss raises :class:`OptimizationError`.
    """
    config = config or OptimizeConfig()
    photo = _checked_content(content)
    styles = _checked_styles(style)
    config.blend_weights(len(styles))
    plan = plan_sizes(photo.shape[-2], photo.shape[-1], config.size, config.min_size, config.scale_step)
    weights = None if mask is None else fit_mask(mask, photo.shape[0], *plan.output)
    if config.strength == 0:
        return resize(photo, plan.output).clone()
    network, _ = depth_network(depth_model)
    if config.depth_weight > 0 and network is None:
        raise ValueError(
            f"depth_weight is {config.depth_weight} but no depth model was given: pass "
            "depth_model=load_depth_model(...), or set depth_weight=0 to optimise without the depth loss"
        )
    if depth_map is not None and tuple(depth_map.shape) != (photo.shape[0], 1, *photo.shape[-2:]):
        raise InputImageError(
            f"the depth map must be [B,1,H,W] like the content {tuple(photo.shape)}, got "
            f"{tuple(depth_map.shape)}: make it with depth_from_map(map, B, H, W)"
        )
    if depth_map is not None and config.depth_weight > 0 and config.depth_loss != "ssi":
        raise SettingsError(
            f"a depth map has a scale of its own, so it works with the 'ssi' depth loss, not "
            f"{config.depth_loss!r}: set depth_loss='ssi' or leave the depth map out"
        )
    run_device = torch.device(device) if device is not None else _device_of(vgg)
    with torch.inference_mode(False), torch.enable_grad():
        run = _Optimization(
            photo.clone(),
            [s.clone() for s in styles],
            plan,
            config,
            vgg,
            network if config.depth_weight > 0 else None,
            depth_map,
            run_device,
            weights,
            on_progress,
            should_stop,
        )
        return run.run()


def _checked_content(content: Tensor) -> Tensor:
    rgb = to_rgb(content).float()
    if rgb.shape[0] == 0:
        raise InputImageError("no content image: the batch is empty")
    if not bool(torch.isfinite(rgb).all()):
        raise InputImageError("the content image contains NaN or infinite values; pass a 0..1 image")
    return rgb


def _checked_styles(style: Tensor | Sequence[Tensor]) -> list[Tensor]:
    """Every style image as ``[1,3,H,W]`` float: a batch and a list of images (or batches) alike."""
    items = [style] if isinstance(style, Tensor) else list(style)
    styles = []
    for item in items:
        batch = to_rgb(item.unsqueeze(0) if item.ndim == 3 else item).float()
        styles.extend(image.unsqueeze(0) for image in batch)
    if not styles:
        raise InputImageError("no style image was given")
    for index, image in enumerate(styles):
        if min(image.shape[-2:]) < 1 or not bool(torch.isfinite(image).all()):
            raise InputImageError(f"style image {index + 1} is empty or contains NaN/inf values")
    return styles


def _device_of(module: nn.Module) -> torch.device:
    first = next(module.parameters(), None)
    return first.device if first is not None else torch.device("cpu")


def _frozen_on(module: nn.Module, device: torch.device, memory_format: torch.memory_format) -> nn.Module:
    """A frozen, autograd-ready ``module`` on ``device`` (a copy if it lives elsewhere)."""
    module = autograd_ready(module)
    if _device_of(module) != device:
        module = copy.deepcopy(module)
    return module.to(device, memory_format=memory_format)


class _IterateAverage:
    """Exponential average of the iterates with bias correction: a proper weighted mean from step 1."""

    def __init__(self, decay: float) -> None:
        self.decay = decay
        self.total: Tensor | None = None
        self.weight = 0.0

    def update(self, image: Tensor) -> None:
        if self.total is None:
            self.total = torch.zeros_like(image, memory_format=torch.contiguous_format)
        self.total.mul_(self.decay).add_(image, alpha=1 - self.decay)
        self.weight = self.weight * self.decay + (1 - self.decay)

    def value(self) -> Tensor | None:
        return None if self.total is None else self.total / self.weight


class _Optimization:
    """One run: the scales in turn, each an Adam optimisation of the pixels from the previous result."""

    def __init__(
        self,
        photo: Tensor,
        styles: list[Tensor],
        plan: SizePlan,
        config: OptimizeConfig,
        vgg: VGG16Features,
        depth: DepthAnythingV2 | None,
        depth_map: Tensor | None,
        device: torch.device,
        mask: Tensor | None,
        on_progress: ProgressCallback | None,
        should_stop: StopCallback | None,
    ) -> None:
        precision = device_precision(device, config.precision)
        self.autocast, self.memory_format = precision.autocast, precision.memory_format
        self.in_bf16 = precision.autocast is not contextlib.nullcontext
        self.sync_every_step = device.type != "cuda"
        self.config, self.plan, self.device = config, plan, device
        self.photo_device = photo.device
        self.output_content = resize(photo, plan.output)
        self.mask = mask
        self.photo = photo.to(device)
        self.styles = [s.to(device) for s in styles]
        self.vgg = _frozen_on(vgg, device, self.memory_format)
        self.depth = _frozen_on(depth, device, torch.contiguous_format) if depth is not None else None
        self.depth_map = None if depth_map is None else depth_map.to(device)
        self.on_progress, self.should_stop = on_progress, should_stop
        self.steps = [config.coarsest_steps] + [config.steps] * (len(plan.scales) - 1)
        self.total = sum(self.steps)
        self.done = 0

    def run(self) -> Tensor:
        result: Tensor | None = None
        for index, size in enumerate(self.plan.scales):
            result = self._run_scale(index, size, result)
        return self._finished(result)

    def _start(self, size: tuple[int, int], content: Tensor, previous: Tensor | None) -> Tensor:
        if previous is not None:
            return resize(previous, size)
        if self.config.init == "content":
            return content.clone()
        generator = torch.Generator().manual_seed(self.config.seed)
        noise = torch.rand(content.shape, generator=generator).to(self.device)
        return noise if self.config.init == "noise" else (content + noise) / 2

    def _run_scale(self, index: int, size: tuple[int, int], previous: Tensor | None) -> Tensor:
        content = resize(self.photo, size)
        with self.autocast():  # the targets in the precision the steps will compare them in
            objective = ScaleObjective(
                content, self.styles, self.config, self.vgg, self.depth, index, depth_map=self.depth_map
            )
        start = self._start(size, content, previous)
        pixels = start.contiguous(memory_format=self.memory_format).requires_grad_(True)
        optimizer = torch.optim.Adam([pixels], lr=self.config.lr)
        average = _IterateAverage(self.config.average_decay)
        finite = torch.ones((), dtype=torch.bool, device=self.device)
        for step in range(1, self.steps[index] + 1):
            self._check_stop(average, start)
            with self.autocast():
                loss, _ = objective(pixels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                pixels.clamp_(0, 1)
                average.update(pixels)
            finite &= torch.isfinite(loss.detach())
            self.done += 1
            last = step == self.steps[index]
            due = last or (self.config.preview_every and step % self.config.preview_every == 0)
            if due or self.sync_every_step:
                self._check_finite(finite, index, size)
            self._report(average.value() if due else None)
        return average.value()

    def _check_stop(self, average: _IterateAverage, start: Tensor) -> None:
        if self.should_stop is None or not self.should_stop():
            return
        current = average.value()
        current = start if current is None else current
        raise OptimizationStopped(
            f"the optimisation was stopped after {self.done} of {self.total} steps",
            partial=self._finished(current.detach()),
            step=self.done,
            total=self.total,
        )

    def _check_finite(self, finite: Tensor, index: int, size: tuple[int, int]) -> None:
        if bool(finite):
            return
        raise OptimizationError(
            f"the optimisation diverged: its loss became NaN or infinite at scale {index + 1} of "
            f"{len(self.plan.scales)} ({size[1]}x{size[0]} px), by step {self.done} of {self.total}. "
            f"Check that the model files are intact.{_FP32_ADVICE if self.in_bf16 else ''}"
        )

    def _report(self, current: Tensor | None) -> None:
        if self.on_progress is None:
            return
        preview = current[:1].detach().float().clamp(0, 1).cpu() if current is not None else None
        self.on_progress(self.done, self.total, preview)

    def _finished(self, image: Tensor) -> Tensor:
        """The working-size image at the output size, blended with the content as configured."""
        styled = resize(image.detach().float().contiguous(), self.plan.output).to(self.photo_device)
        return blend_with_content(
            self.output_content,
            styled,
            strength=self.config.strength,
            preserve_color=self.config.preserve_color,
            mask=self.mask,
        )
