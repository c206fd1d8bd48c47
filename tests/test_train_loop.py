"""The feed-forward training loop on the CPU: learning, depth loss, resume, cancel, NaN, files.

Real VGG16Features with random weights at 32 px; the tiny Depth Anything from tests/factories.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from depthstyle.depthstyle_core.depth import depth_for_loss
from depthstyle.depthstyle_core.errors import TrainingError
from depthstyle.depthstyle_core.images import save_image
from depthstyle.depthstyle_core.losses import LossWeights, depth_loss
from depthstyle.depthstyle_core.models.transformer_net import TransformerNet
from depthstyle.depthstyle_core.models.vgg import VGG16Features
from depthstyle.depthstyle_core.style_model import load_style_model
from depthstyle.trainers.data import ContentSource, CropSampler
from depthstyle.trainers.fast.config import TrainConfig
from depthstyle.trainers.fast.job import train_style
from depthstyle.trainers.fast.objective import StyleObjective
from depthstyle.trainers.run.loss_curve import SERIES_COLOURS
from depthstyle.trainers.run.paths import TrainPaths

from .factories import smooth_images

SMALL = {"batch_size": 2, "image_size": 32, "style_size": 48, "depth_resolution": 28, "preview_every": 0}


@pytest.fixture(scope="module")
def style() -> torch.Tensor:
    return smooth_images(1, 48, 56, seed=99)


@pytest.fixture(scope="module")
def content() -> torch.Tensor:
    return smooth_images(6, 40, 48, seed=1)


def _tensors(path: Path) -> dict[str, torch.Tensor]:
    net, _ = load_style_model(path)
    return net.state_dict()


def test_loss_goes_down_inside_inference_mode_with_files_and_callbacks(tmp_path, style, content) -> None:
    progress, previews, logged = [], [], []
    with torch.inference_mode(), torch.random.fork_rng():  # as in ComfyUI, the VGG is built here too
        torch.manual_seed(0)
        vgg = VGG16Features()
        result = train_style(
            style,
            content,
            tmp_path / "out" / "falling",
            config=TrainConfig(
                iterations=24,
                depth_weight=0.0,
                log_every=4,
                checkpoint_every=12,
                **{**SMALL, "preview_every": 12},
            ),
            vgg=vgg,
            depth_model=None,  # depth weight 0: no depth network at all
            on_progress=lambda step, total, preview: progress.append((step, total, preview)),
            on_preview=lambda step, image: previews.append(step),
            on_log=logged.append,
        )
    assert result.steps_done == 24 and not result.stopped and result.resumed_from is None
    totals = [r["total"] for r in result.records]
    assert [r["step"] for r in result.records] == [4, 8, 12, 16, 20, 24]
    assert totals[-1] < 0.75 * totals[0], totals
    assert result.records[0]["depth"] == 0.0 and result.records[0]["content"] > 0
    assert logged == result.records
    assert [p[0] for p in progress] == list(range(1, 25)) and {p[1] for p in progress} == {24}
    with_preview = [(step, image) for step, _, image in progress if image is not None]
    assert [step for step, _ in with_preview] == [12, 24] and previews == [12, 24]
    image = with_preview[-1][1]
    assert image.shape == (1, 3, 32, 38) and 0 <= float(image.min()) and float(image.max()) <= 1
    assert float(image.std()) > 0.01  # a picture, not a flat field

    paths = result.paths
    net, metadata = load_style_model(paths.model)
    assert metadata["train.step"] == "24" and metadata["train.complete"] == "true"
    assert json.loads(metadata["train.config"])["iterations"] == 24
    assert metadata["train.depth_model"] == "none"
    log = json.loads(paths.log_json.read_text())
    assert [r["total"] for r in log["records"]] == totals
    csv_lines = paths.log_csv.read_text().splitlines()
    assert csv_lines[0].startswith("step,total,content,style,depth,tv") and len(csv_lines) == 7
    with Image.open(paths.loss_curve) as curve:
        pixels = curve.convert("RGB")
        colours = {tuple(c) for c in np.asarray(pixels).reshape(-1, 3).tolist()}
    assert SERIES_COLOURS["total"] in colours and SERIES_COLOURS["style"] in colours
    assert paths.preview.is_file()
    assert list(paths.model.parent.glob(".*.tmp")) == []


class LayoutDepth(nn.Module):
    """A fixed stand-in depth network: "near" is where the 4x-downsampled image is bright. The random
    ViT of the tiny Depth Anything responds to pixel noise, which a network trained for tens of steps
    cannot reproduce, so it cannot show the effect within a CPU test's budget."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        luminance = (x * x.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
        coarse = F.avg_pool2d(luminance, 4)
        return F.softplus(F.interpolate(coarse, size=x.shape[-2:], mode="bilinear", align_corners=False))


def test_depth_loss_preserves_depth_on_held_out_images(tmp_path, vgg) -> None:
    depth = LayoutDepth()
    style = smooth_images(1, 48, 48, seed=99)
    content = smooth_images(8, 40, 48, seed=1)
    held_out = smooth_images(4, 32, 32, seed=200)  # never trained on
    errors = {}
    for weight in (5.0, 0.0):  # same seed, same steps, same data order
        config = TrainConfig(iterations=20, depth_weight=weight, checkpoint_every=20, **SMALL)
        result = train_style(
            style,
            content,
            tmp_path / f"depth{weight}",
            config=config,
            vgg=vgg,
            depth_model=depth if weight else None,
        )
        net, _ = load_style_model(result.model_path)
        with torch.no_grad():
            stylised_depth = depth_for_loss(depth, net(held_out), 28)
            errors[weight] = float(depth_loss(stylised_depth, depth_for_loss(depth, held_out, 28)))
    assert errors[5.0] < 0.5 * errors[0.0], errors


def test_depth_term_reaches_the_network_through_depth_anything(vgg, depth_net, style, content) -> None:
    torch.manual_seed(0)
    net = TransformerNet()
    batch = content[:2, :, :32, :32]
    objective = StyleObjective(
        vgg,
        style,
        LossWeights(content=1, style=0, depth=1, tv=0),
        depth_model=depth_net.requires_grad_(False),
        depth_resolution=28,
    )
    objective.calibrate(net(batch), batch)
    terms = objective.terms(net(batch), batch)
    assert set(terms) == {"content", "depth"} and float(terms["depth"].detach()) > 0
    grads = torch.autograd.grad(terms["depth"], list(net.parameters()))
    assert all(torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0


class Refuses(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise AssertionError("the depth network must not run when the depth weight is 0")


def test_folder_training_without_depth_never_runs_the_depth_network(tmp_path, vgg, style, content) -> None:
    folder = tmp_path / "photos"
    for index, image in enumerate(content[:3]):
        save_image(image, folder / f"{index}.png" if index else folder / "sub" / f"{index}.jpg")
    (folder / "broken.webp").write_bytes(b"RIFF....WEBPnot really")
    result = train_style(
        style,
        str(folder),
        tmp_path / "nodepth",
        vgg=vgg,
        depth_model=Refuses(),
        config=TrainConfig(iterations=2, depth_weight=0.0, log_every=1, **SMALL),
    )
    assert result.steps_done == 2 and result.losses["depth"] == 0.0 and result.losses["style"] > 0
    assert result.skipped_files == [str(folder / "broken.webp")]
    assert json.loads(load_style_model(result.model_path)[1]["train.config"])["depth_weight"] == 0.0
    with pytest.raises(ValueError, match="no depth model was given"):
        train_style(style, content, tmp_path / "x", vgg=vgg, config=TrainConfig(iterations=1, **SMALL))


class Interrupt(Exception):
    """Stands in for ComfyUI's InterruptProcessingException."""


def test_stop_exception_and_resume_reproduce_an_uninterrupted_run(tmp_path, vgg, depth_net, style, content):
    config = TrainConfig(iterations=6, checkpoint_every=3, log_every=1, **SMALL)
    common = {"config": config, "vgg": vgg, "depth_model": depth_net}
    reference = train_style(style, content, tmp_path / "reference", **common)

    done: list[int] = []
    stopped = train_style(
        style,
        content,
        tmp_path / "run",
        **common,
        on_progress=lambda s, t, p: done.append(s),
        should_stop=lambda: len(done) >= 2,
    )
    assert stopped.stopped and stopped.steps_done == 2
    net, metadata = load_style_model(stopped.model_path)  # the cancel-time checkpoint is a usable model
    assert isinstance(net, TransformerNet)
    assert metadata["train.step"] == "2" and metadata["train.complete"] == "false"

    changed = TrainConfig(iterations=6, checkpoint_every=3, log_every=1, **{**SMALL, "image_size": 48})
    with pytest.raises(TrainingError, match=r"image_size: 32 -> 48"):
        train_style(
            style, content, tmp_path / "run", config=changed, vgg=vgg, depth_model=depth_net, resume=True
        )

    def interrupt_at_4(step: int, total: int, preview: torch.Tensor | None) -> None:
        if step == 4:
            raise Interrupt("cancelled by the user")

    with pytest.raises(Interrupt):
        train_style(style, content, tmp_path / "run", **common, resume=True, on_progress=interrupt_at_4)
    assert load_style_model(tmp_path / "run.safetensors")[1]["train.step"] == "4"

    resumed = train_style(style, content, tmp_path / "run", **common, resume=True)
    assert resumed.resumed_from == 4 and resumed.steps_done == 6 and not resumed.stopped
    final, expected = _tensors(resumed.model_path), _tensors(reference.model_path)
    assert final.keys() == expected.keys()
    for key in expected:
        assert torch.equal(final[key], expected[key]), key
    losses = [(r["step"], r["total"], r["depth"]) for r in resumed.records]
    assert losses == [(r["step"], r["total"], r["depth"]) for r in reference.records]
    assert [step for step, _, _ in losses] == [1, 2, 3, 4, 5, 6]

    calls: list[int] = []
    again = train_style(
        style, content, tmp_path / "run", **common, resume=True, on_progress=lambda s, t, p: calls.append(s)
    )
    assert again.steps_done == 6 and calls == []  # already complete: nothing to do


def test_stop_before_the_first_step_writes_nothing(tmp_path, vgg, style, content) -> None:
    result = train_style(
        style,
        content,
        tmp_path / "never",
        vgg=vgg,
        should_stop=lambda: True,
        config=TrainConfig(iterations=5, depth_weight=0.0, **SMALL),
    )
    assert result.stopped and result.steps_done == 0
    assert not result.model_path.exists() and not result.paths.state.exists()


def _first_poisoned_step(images: torch.Tensor, seed: int) -> int:
    sampler = CropSampler(ContentSource.from_tensor(images), 32, seed)
    return next(step for step in range(100) if torch.isnan(sampler.batch(step, 2)).any())


def test_nan_loss_raises_and_keeps_the_last_good_checkpoint(tmp_path, vgg, style) -> None:
    images = smooth_images(12, 36, 36, seed=5)
    images[2] = float("nan")  # a poisoned image
    seed = next(s for s in range(50) if _first_poisoned_step(images, s) >= 2)
    good = _first_poisoned_step(images, seed)  # steps 1..good are clean, step good+1 sees the NaN
    config = TrainConfig(
        iterations=2 * good + 1, seed=seed, depth_weight=0.0, checkpoint_every=good, log_every=1000, **SMALL
    )
    snapshot: dict[str, bytes] = {}
    out = tmp_path / "nan"
    paths = TrainPaths.for_model(out)

    def remember_checkpoint(step: int, total: int, preview: torch.Tensor | None) -> None:
        if step == good:
            snapshot["model"] = paths.model.read_bytes()
            snapshot["state"] = paths.state.read_bytes()

    with pytest.raises(TrainingError) as info:
        train_style(style, images, out, config=config, vgg=vgg, on_progress=remember_checkpoint)
    message = str(info.value)
    assert "NaN" in message and f"step {good})" in message and "nan.safetensors" in message
    assert paths.model.read_bytes() == snapshot["model"]
    assert paths.state.read_bytes() == snapshot["state"]
    net, metadata = load_style_model(paths.model)
    assert metadata["train.step"] == str(good)
    assert all(torch.isfinite(p).all() for p in net.parameters())
    assert list(tmp_path.glob(".*.tmp")) == []
