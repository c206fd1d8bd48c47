"""Train or fine-tune the any-painting network (MicroAST) with the depth loss, so that one network keeps
the photo's depth layout for every painting.

:func:`train_any_style` pairs photo crops with painting crops (:mod:`.data`), paints each photo
with its painting in one pass (:mod:`.painting_pass`), and minimises content, style, style-signal contrast
and depth (:mod:`.objective`) with Adam and the recipe's decaying learning rate. Everything around
the steps is the shared training loop (:mod:`..run.loop`): resumable atomic checkpoints, loss log and
curve, previews, NaN stops, cancel, and several processes under ``torchrun`` (each trains its slice of
every step; the contrastive loss sees the paintings of the whole step). The result is an any-painting
model file of the same architecture, loadable with ``load_any_style_model(path)``.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import Tensor

from ...depthstyle_core.any_style.model_file import load_any_style_model, save_any_style_model
from ...depthstyle_core.checkpoint import load_state_dict_strict
from ...depthstyle_core.depth import DepthEstimator
from ...depthstyle_core.errors import InputImageError
from ...depthstyle_core.images import save_image
from ...depthstyle_core.models.depth_anything import DepthAnythingV2
from ...depthstyle_core.models.microast import ARCHITECTURE, MicroAST
from ...depthstyle_core.models.vgg import VGG16Features
from ..data import ContentSource
from ..distributed import SINGLE, Team
from ..run.callbacks import LogCallback, PreviewCallback, ProgressCallback, StopCallback, TrainCallbacks
from ..run.inputs import as_content_source, fingerprint_tensor
from ..run.loop import TrainingLoop, TrainResult, restored_adam
from ..run.loss_networks import autograd_ready, weighted_depth_network
from ..run.paths import TrainPaths
from .config import ANY_TERMS, BUILTIN, RANDOM, AnyTrainConfig
from .data import PairSampler, first_readable, split_pairs
from .objective import PaintingObjective
from .painting_pass import PaintingPass
from .preview import PREVIEW_PAINTINGS, paint_preview

ImageSource = ContentSource | Tensor | str | os.PathLike
_SAME_ON_EVERY_PROCESS = {
    "config": "settings",
    "photos_fingerprint": "photos",
    "paintings_fingerprint": "paintings",
    "depth_model": "depth model",
}
_MUST_MATCH = (
    ("photos_fingerprint", "the photos"),
    ("paintings_fingerprint", "the paintings"),
    ("depth_model", "the depth model"),
)


def initial_network(init: str, seed: int) -> MicroAST:
    """The weights a run starts from: the built-in network, a seeded random one, or a model file."""
    if init == BUILTIN:
        return load_any_style_model()
    if init == RANDOM:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return MicroAST()
    return load_any_style_model(init)


def _weights_fingerprint(net: MicroAST) -> str:
    return fingerprint_tensor(torch.cat([t.detach().flatten().cpu() for t in net.state_dict().values()]))


class _AnyRun(TrainingLoop):
    """One training run of the any-painting network: the network, optimiser, objective and data."""

    file_noun = "image file"
    write_model = staticmethod(save_any_style_model)

    def __init__(
        self,
        photos: ContentSource,
        paintings: ContentSource,
        paths: TrainPaths,
        config: AnyTrainConfig,
        vgg: VGG16Features,
        depth_model: DepthAnythingV2 | None,
        depth_name: str,
        device: torch.device,
        callbacks: TrainCallbacks,
        resume: bool,
        team: Team,
    ) -> None:
        info: dict[str, Any] = {
            "architecture": ARCHITECTURE,
            "config": config.to_dict(),
            "photos_fingerprint": photos.fingerprint(),
            "paintings_fingerprint": paintings.fingerprint(),
            "photos": photos.description,
            "paintings": paintings.description,
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
            terms=("total", *ANY_TERMS),
        )
        self.sampler = PairSampler(photos, paintings, config.image_size, config.load_size, config.seed)
        uses_depth = depth_model is not None and config.depth_weight > 0
        self.objective = PaintingObjective(
            autograd_ready(vgg).to(device, memory_format=self.memory_format),
            config.loss_weights(),
            depth_model=autograd_ready(depth_model).to(device) if uses_depth else None,
            depth_loss_mode=config.depth_loss,
            depth_resolution=config.depth_resolution,
            magnitudes=self.saved_magnitudes,
            gather=team.gather_rows,
        )
        self.net = self._build_net()
        self.model = team.prepare_model(PaintingPass(self.net), device)
        self.optimizer = restored_adam(self.net.parameters(), config.lr, self.state)
        self.preview_inputs = (
            self._preview_inputs(photos, paintings) if config.preview_every and team.is_main else None
        )

    def _build_net(self) -> MicroAST:
        """The initial weights, or the saved ones when resuming (the initial file is then not needed)."""
        if self.state is None:
            net = initial_network(self.config.init, self.config.seed)
            self.info["init_sha256"] = _weights_fingerprint(net)
        else:
            net = MicroAST()
            source = str(self.paths.state)
            load_state_dict_strict(net, self.state.net, what="the any-painting network", source=source)
            self.info["init_sha256"] = self.state.info.get("init_sha256", "unknown")
        return net.to(self.device, memory_format=self.memory_format).train()

    def _preview_inputs(self, photos: ContentSource, paintings: ContentSource) -> tuple[Tensor, list[Tensor]]:
        """The first photo that decodes (shorter side ``image_size``) and the first few paintings
        (shorter side ``load_size``, the scale training sees them at), on the device."""
        config = self.config
        photo = first_readable(photos, 1, config.image_size, self.sampler.photos.failed)[0]
        chosen = first_readable(paintings, PREVIEW_PAINTINGS, config.load_size, self.sampler.paintings.failed)
        return photo.to(self.device), [painting.to(self.device) for painting in chosen]

    def _calibrate(self, photos: Tensor, paintings: Tensor) -> None:
        """Measure the loss magnitudes on this batch as the built-in network paints it (see
        :mod:`.objective`), averaged over the processes."""
        reference = PaintingPass(load_any_style_model(device=self.device))
        reference = reference.to(memory_format=self.memory_format)
        with torch.no_grad(), self.autocast():
            out = reference(photos, paintings, self.objective.reads_back)
            self.objective.calibrate(out, photos, paintings, self.team.mean_terms)

    def train_step(self, batch: Tensor) -> None:
        photos, paintings = split_pairs(batch.contiguous(memory_format=self.memory_format))
        if self.objective.needs_calibration:
            self._calibrate(photos, paintings)
        for group in self.optimizer.param_groups:
            group["lr"] = self.config.lr_at(self.step)
        with self.autocast():
            with self.team.talking("starting a step"):
                out = self.model(photos, paintings, self.objective.reads_back)
            total, weighted = self.objective(out, photos, paintings)
        self.descend(total, weighted)

    def model_metadata(self) -> dict[str, str]:
        return {
            "train.photos": self.info["photos"],
            "train.paintings": self.info["paintings"],
            "train.init": self.config.init,
            "train.init_sha256": self.info["init_sha256"],
        }

    def preview(self) -> Tensor:
        """The fixed photo painted with the fixed paintings by the current network, as a grid
        ``[1,3,2H,(1+K)W]`` 0..1 on the CPU (also written to the preview file)."""
        photo, paintings = self.preview_inputs
        with torch.no_grad(), self.autocast():
            image = paint_preview(self.net, photo, paintings)
        image = image.float().cpu()
        save_image(image, self.paths.preview)
        return image


def _check_paintings_per_step(config: AnyTrainConfig, team: Team, paintings: ContentSource) -> None:
    """The contrastive loss compares each result with the step's other paintings: refuse runs where
    there are none, before anything is written."""
    if config.contrastive_weight <= 0:
        return
    per_step = config.batch_size * team.world_size
    if per_step < 2:
        raise ValueError(
            "the contrastive loss compares each result with the other paintings of its step, so it needs "
            f"2 or more paintings per step, and this run has {per_step} ({team.world_size} process(es) x "
            f"batch {config.batch_size}): use a batch size of 2 or more (--batch-size), or turn the loss "
            "off with contrastive weight 0 (--contrastive-weight 0)"
        )
    if len(paintings) < 2:
        raise InputImageError(
            f"only one painting ({paintings.description}): the contrastive loss needs two or more different "
            "paintings to compare with. Give a folder of many paintings, or set the contrastive weight to 0 "
            "(--contrastive-weight 0)."
        )


def train_any_style(
    photos: ImageSource,
    paintings: ImageSource,
    out_path: str | os.PathLike,
    *,
    config: AnyTrainConfig | None = None,
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
    """Train the any-painting network on ``photos`` and ``paintings`` and write it to ``out_path`` (a
    ``.safetensors`` any-painting model, loadable with ``load_any_style_model(path)``).

    ``photos`` and ``paintings``: folder paths (searched recursively), image batches ``[N,C,H,W]`` or
    :class:`ContentSource` objects. ``config.init`` chooses the starting weights (the built-in network
    by default). ``vgg``: the loss network (``load_vgg16()``). ``depth_model``: a Depth Anything
    network or the estimator from ``load_depth_model``; needed only when ``config.depth_weight > 0``.
    Both are frozen, moved to ``device`` and switched to eval mode. ``resume``: continue from
    ``<name>.state.safetensors`` if it exists (same settings, images and network required), else start
    fresh; without ``resume`` an existing run's files are overwritten from the first checkpoint on.
    Beside the model go the resume state, the loss log (JSON, CSV), the loss curve and the preview.

    ``team``: the processes that train together (:func:`~..distributed.join_torchrun`); None for this
    process alone. Every process calls this function with the same arguments and its own ``device``;
    ``config.batch_size`` is per process; only rank 0 writes files and previews.

    Raises ``ValueError`` for settings that cannot work (no depth model for a depth weight, fewer than
    2 paintings per step for the contrastive loss), :class:`InputImageError` for unusable folders and
    :class:`TrainingError` when the loss becomes NaN/inf (the last checkpoint is kept) or the saved run
    cannot be resumed; exceptions from the callbacks propagate after a checkpoint.
    """
    config = config or AnyTrainConfig()
    team = team or SINGLE
    device = torch.device(device)
    network, depth_name = weighted_depth_network(depth_model, config.depth_weight)
    paths = TrainPaths.for_model(out_path)
    callbacks = TrainCallbacks(on_progress, on_preview, on_log, should_stop)
    with torch.inference_mode(False), torch.enable_grad():
        photo_source = as_content_source(photos, "photo")
        painting_source = as_content_source(paintings, "painting")
        _check_paintings_per_step(config, team, painting_source)
        run = _AnyRun(
            photo_source,
            painting_source,
            paths,
            config,
            vgg,
            network,
            depth_name,
            device,
            callbacks,
            resume,
            team,
        )
        return run.run()
