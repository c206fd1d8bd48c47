"""Train a feed-forward style network (Johnson et al. 2016) with a depth loss (Liu et al. 2017).

:func:`train_style` runs the loop: crops from a :class:`~..data.ContentSource`, Adam on a
TransformerNet, the :class:`~.objective.StyleObjective`, checkpoints, loss log, previews, cancel and
resume. On CUDA it uses bf16 autocast and channels-last; on the CPU plain fp32. The host is only
synchronised at log and checkpoint steps: non-finite losses are accumulated on the device and
checked there, and a checkpoint is never written from non-finite weights.

With a :class:`~..distributed.Team` of several processes (``torchrun``), each process trains on its
slice of every global batch, DistributedDataParallel averages the gradients, the loss calibration
and the logged losses are averaged over the processes, and all of them agree at every step on
whether to stop; only rank 0 writes files and previews. A team of one runs the same code.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import Tensor

from ...depthstyle_core.checkpoint import load_state_dict_strict
from ...depthstyle_core.depth import DepthEstimator
from ...depthstyle_core.errors import InputImageError
from ...depthstyle_core.images import save_image
from ...depthstyle_core.models.depth_anything import DepthAnythingV2
from ...depthstyle_core.models.transformer_net import TransformerNet
from ...depthstyle_core.models.vgg import VGG16Features
from ...depthstyle_core.style_model import save_style_model
from ..data import ContentSource, CropSampler
from ..distributed import SINGLE, Team
from ..run.callbacks import LogCallback, PreviewCallback, ProgressCallback, StopCallback, TrainCallbacks
from ..run.inputs import as_content_source, fingerprint_tensor
from ..run.loop import TrainingLoop, TrainResult, restored_adam
from ..run.loss_log import TERMS
from ..run.loss_networks import autograd_ready, weighted_depth_network
from ..run.paths import TrainPaths
from .config import TrainConfig
from .objective import StyleObjective, prepare_style_image

__all__ = ["TrainResult", "train_style"]

_SAME_ON_EVERY_PROCESS = {
    "config": "settings",
    "style_sha256": "style image",
    "content_fingerprint": "content images",
    "depth_model": "depth model",
}
_MUST_MATCH = (
    ("style_sha256", "the style image"),
    ("content_fingerprint", "the content images"),
    ("depth_model", "the depth model"),
)


class _Run(TrainingLoop):
    """One training run of a style network: the network, optimiser, objective and data."""

    write_model = staticmethod(save_style_model)

    def __init__(
        self,
        style_image: Tensor,
        source: ContentSource,
        paths: TrainPaths,
        config: TrainConfig,
        vgg: VGG16Features,
        depth_model: DepthAnythingV2 | None,
        depth_name: str,
        device: torch.device,
        callbacks: TrainCallbacks,
        resume: bool,
        team: Team,
    ) -> None:
        info: dict[str, Any] = {
            "architecture": "TransformerNet",
            "config": config.to_dict(),
            "style_sha256": fingerprint_tensor(style_image),
            "content_fingerprint": source.fingerprint(),
            "content": source.description,
            "depth_model": depth_name if config.depth_weight > 0 else "none",
            "world_size": team.world_size,
        }
        super().__init__(
            config,
            paths,
            device,
            callbacks,
            team,
            info,
            resume=resume,
            same_on_every_process=_SAME_ON_EVERY_PROCESS,
            must_match=_MUST_MATCH,
            terms=TERMS,
        )
        self.source = source
        self.sampler = CropSampler(source, config.image_size, config.seed)
        vgg = autograd_ready(vgg).to(device, memory_format=self.memory_format)
        depth = (
            autograd_ready(depth_model).to(device)
            if depth_model is not None and config.depth_weight > 0
            else None
        )
        style = prepare_style_image(style_image, config.style_size).to(device)
        self.objective = StyleObjective(
            vgg,
            style,
            config.loss_weights(),
            depth_model=depth,
            depth_loss_mode=config.depth_loss,
            depth_resolution=config.depth_resolution,
            magnitudes=self.saved_magnitudes,
        )
        self.net = self._build_net()
        self.model = team.prepare_model(self.net, device)
        self.optimizer = restored_adam(self.net.parameters(), config.lr, self.state)
        self.preview_image = self._preview_source() if config.preview_every and team.is_main else None

    def _preview_source(self) -> Tensor:
        """The first content image that decodes, shorter side ``image_size``, on the device."""
        for index in range(len(self.source)):
            try:
                return self.source.load_resized(index, self.config.image_size).unsqueeze(0).to(self.device)
            except InputImageError:
                self.sampler.failed.add(self.source.name(index))
        raise InputImageError(f"none of the content images could be decoded ({self.source.description})")

    def _build_net(self) -> TransformerNet:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.config.seed)
            net = TransformerNet(self.config.net_config)
        if self.state is not None:
            source = str(self.paths.state)
            load_state_dict_strict(net, self.state.net, what="the style network", source=source)
        return net.to(self.device, memory_format=self.memory_format).train()

    def train_step(self, batch: Tensor) -> None:
        batch = batch.contiguous(memory_format=self.memory_format)
        if self.objective.needs_calibration:
            with torch.no_grad(), self.autocast():
                self.objective.calibrate(self.net(batch), batch, self.team.mean_terms)
        with self.autocast():
            with self.team.talking("starting a step"):
                stylised = self.model(batch)
            total, weighted = self.objective(stylised, batch)
        self.descend(total, weighted)

    def model_metadata(self) -> dict[str, str]:
        return {"train.style_sha256": self.info["style_sha256"], "train.content": self.info["content"]}

    def preview(self) -> Tensor:
        """The fixed preview image stylised by the current network, ``[1,3,H,W]`` 0..1 on the CPU."""
        self.net.train(False)
        with torch.no_grad(), self.autocast():
            image = self.net(self.preview_image.contiguous(memory_format=self.memory_format))
        self.net.train()
        image = image.float().clamp(0, 1).cpu()
        save_image(image, self.paths.preview)
        return image


def train_style(
    style_image: Tensor,
    content: ContentSource | Tensor | str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    config: TrainConfig | None = None,
    vgg: VGG16Features,
    depth_model: DepthAnythingV2 | DepthEstimator | None = None,
    device: torch.device | str = "cpu",
    resume: bool = False,
    on_progress: ProgressCallback | None = None,
    on_preview: PreviewCallback | None = None,
    on_log: LogCallback | None = None,
    should_stop: StopCallback | None = None,
    team: Team | None = None,
) -> TrainResult:
    """Train a style network for ``style_image`` (``[1,C,H,W]`` 0..1) on ``content`` and write it to
    ``out_path`` (a ``.safetensors`` style model, loadable with ``load_style_model``).

    ``content``: a :class:`ContentSource`, an image batch ``[N,C,H,W]`` or a folder path. ``vgg``: the
    loss network (``load_vgg16()``). ``depth_model``: a Depth Anything network or the estimator from
    ``load_depth_model``; needed only when ``config.depth_weight > 0``. Both are frozen, moved to
    ``device`` and switched to eval mode. ``resume``: continue from ``<name>.state.safetensors`` if it
    exists (same settings required), else start fresh; without ``resume`` an existing run's files are
    overwritten from the first checkpoint on.

    ``team``: the processes that train this style together (:func:`~..distributed.join_torchrun`);
    None for this process alone. Every process calls ``train_style`` with the same arguments and its
    own ``device``; ``config.batch_size`` is per process; only rank 0 writes files and previews.

    Raises :class:`TrainingError` when the loss becomes NaN/inf (the last checkpoint is kept) or the
    saved run cannot be resumed; exceptions from the callbacks propagate after a checkpoint.
    """
    config = config or TrainConfig()
    device = torch.device(device)
    network, depth_name = weighted_depth_network(depth_model, config.depth_weight)
    paths = TrainPaths.for_model(out_path)
    callbacks = TrainCallbacks(on_progress, on_preview, on_log, should_stop)
    with torch.inference_mode(False), torch.enable_grad():
        source = as_content_source(content)  # a tensor is cloned: ComfyUI's may be inference tensors
        run = _Run(
            style_image.clone(),
            source,
            paths,
            config,
            vgg,
            network,
            depth_name,
            device,
            callbacks,
            resume,
            team or SINGLE,
        )
        return run.run()
