"""The depth estimation API on a tiny random-weight Depth Anything V2: sizes, channels, chunks,
normalisation, precision fallback, gradients, cancel, and loading through the real Hub code."""

import pytest
import torch

from depthstyle.depthstyle_core.depth import (
    DEPTH_MODELS,
    DepthEstimator,
    colorize_depth,
    depth_for_loss,
    estimate_depth,
    load_depth_model,
    processing_size,
)
from depthstyle.depthstyle_core.errors import InputImageError, OperationCancelled
from depthstyle.depthstyle_core.models.depth_anything import build_depth_anything

from .factories import random_depth_state_dict, write_depth_checkpoint
from .fake_hub import prefill_cache

RES = 28


@pytest.fixture(scope="module")
def estimator():
    torch.manual_seed(0)
    model = build_depth_anything(random_depth_state_dict(seed=1)).requires_grad_(False)
    return DepthEstimator(model=model, name="tiny", licence="test")


def raw_depth(estimator, images):
    return estimate_depth(estimator, images, resolution=RES, normalization="raw")


@pytest.mark.parametrize(
    ("height", "width", "expected"),
    [(480, 640, (518, 686)), (518, 518, (518, 518)), (37, 251, (308, 2072)), (1000, 10, (56, 14))],
)
def test_processing_size_keeps_aspect_in_multiples_of_14(height, width, expected):
    resolution = 518 if height != 1000 else 14
    size = processing_size(height, width, resolution)
    assert size == expected
    assert size[0] % 14 == 0 and size[1] % 14 == 0


def test_resolution_below_one_patch_is_refused():
    with pytest.raises(InputImageError, match="at least 14"):
        processing_size(100, 100, 10)


def test_odd_size_gives_input_sized_normalised_depth(estimator):
    images = torch.rand(2, 3, 37, 251, generator=torch.Generator().manual_seed(0))
    depth = estimate_depth(estimator, images, resolution=RES)
    assert depth.shape == (2, 1, 37, 251) and depth.dtype == torch.float32
    flat = depth.flatten(1)
    assert torch.allclose(flat.min(1).values, torch.zeros(2), atol=1e-6)
    assert torch.allclose(flat.max(1).values, torch.ones(2), atol=1e-6)
    assert float(flat.std(1).min()) > 0.01


def test_greyscale_and_rgba_match_their_rgb_equivalent(estimator):
    grey = torch.rand(1, 1, 30, 44)
    rgba = torch.cat([grey.expand(-1, 3, -1, -1), torch.rand(1, 1, 30, 44)], dim=1)
    expected = raw_depth(estimator, grey.expand(-1, 3, -1, -1))
    assert torch.allclose(raw_depth(estimator, grey), expected)
    assert torch.allclose(raw_depth(estimator, rgba), expected)


def test_batch_larger_than_chunk_matches_one_chunk_and_reports_progress(estimator):
    images = torch.rand(5, 3, 28, 42, generator=torch.Generator().manual_seed(1))
    seen = []
    chunked = estimate_depth(
        estimator, images, resolution=RES, chunk_size=2, on_progress=lambda d, t, p: seen.append((d, t))
    )
    whole = estimate_depth(estimator, images, resolution=RES, chunk_size=5)
    assert seen == [(2, 5), (4, 5), (5, 5)]
    assert torch.allclose(chunked, whole, atol=1e-5)


def test_normalisation_modes_and_near_is_white(estimator):
    images = torch.rand(3, 3, 28, 28, generator=torch.Generator().manual_seed(2))
    raw = raw_depth(estimator, images)
    assert float(raw.min()) >= 0
    per_image = estimate_depth(estimator, images, resolution=RES)
    per_batch = estimate_depth(estimator, images, resolution=RES, normalization="per_batch")
    low = raw.amin(dim=(1, 2, 3), keepdim=True)
    high = raw.amax(dim=(1, 2, 3), keepdim=True)
    # Depth Anything predicts inverse depth: the largest raw value (nearest) must become 1 (white).
    assert torch.allclose(per_image, (raw - low) / (high - low), atol=1e-5)
    assert torch.allclose(per_batch, (raw - raw.min()) / (raw.max() - raw.min()), atol=1e-5)
    assert not torch.allclose(per_image, per_batch)
    with pytest.raises(ValueError, match="per_image"):
        estimate_depth(estimator, images, normalization="minmax")


def test_gradient_flows_to_the_input(estimator):
    images = torch.rand(2, 3, 28, 28, requires_grad=True)
    estimate_depth(estimator, images, resolution=RES, normalization="raw").square().mean().backward()
    assert images.grad is not None and bool(torch.isfinite(images.grad).all())
    assert float(images.grad.abs().sum()) > 0
    loss_depth = depth_for_loss(estimator.model, images, RES)
    assert loss_depth.shape == (2, 1, 28, 28) and loss_depth.requires_grad


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_reduced_precision_stays_close_and_finite(estimator, precision):
    images = torch.rand(1, 3, 28, 28, generator=torch.Generator().manual_seed(3))
    reference = estimate_depth(estimator, images, resolution=RES)
    reduced = estimate_depth(estimator, images, resolution=RES, precision=precision)
    assert reduced.dtype == torch.float32 and bool(torch.isfinite(reduced).all())
    assert float((reduced - reference).abs().max()) < 0.1


class NanInReducedPrecision(torch.nn.Module):
    """Behaves like a depth network that overflows in fp16: NaN under autocast, sane in fp32."""

    def forward(self, x):
        depth = x.mean(dim=1, keepdim=True).abs()
        if torch.is_autocast_enabled(x.device.type):
            return torch.full_like(depth, float("nan"))
        return depth


def test_nan_in_reduced_precision_falls_back_to_fp32():
    estimator = DepthEstimator(NanInReducedPrecision(), "nan", "test")
    images = torch.rand(1, 3, 28, 28)
    depth = estimate_depth(estimator, images, resolution=RES, precision="fp16", normalization="raw")
    assert bool(torch.isfinite(depth).all())
    assert torch.allclose(depth, estimate_depth(estimator, images, resolution=RES, normalization="raw"))


def test_should_stop_cancels_between_chunks(estimator):
    calls = []

    def stop_after_first_chunk():
        calls.append(1)
        return len(calls) > 1

    with pytest.raises(OperationCancelled, match="after 2 of 4"):
        estimate_depth(
            estimator,
            torch.rand(4, 3, 28, 28),
            resolution=RES,
            chunk_size=2,
            should_stop=stop_after_first_chunk,
        )


def test_colorized_preview_is_rgb_and_brighter_where_nearer():
    depth = torch.linspace(0, 1, 16).view(1, 1, 4, 4)
    colours = colorize_depth(depth)
    assert colours.shape == (1, 3, 4, 4)
    assert float(colours[..., 0, 0].sum()) < float(colours[..., -1, -1].sum())


def test_builtin_small_loads_from_the_hub_cache_and_matches_the_original_layout(tmp_path):
    small = DEPTH_MODELS["small"].hub_file
    cache = tmp_path / "hub"
    hub_file = write_depth_checkpoint(tmp_path / "hf.safetensors", seed=4, layout="hf")
    prefill_cache(cache, small.repo_id, small.filename, hub_file.read_bytes(), revision=small.revision)
    from_hub = load_depth_model("small", cache_dir=cache)
    assert from_hub.name == "Depth-Anything-V2-Small" and from_hub.licence == "Apache-2.0"

    folder = tmp_path / "models" / "depth"
    write_depth_checkpoint(folder / "mine_fp16.safetensors", seed=4, dtype=torch.float16)
    write_depth_checkpoint(folder / "mine.safetensors", seed=4)
    local = load_depth_model("mine.safetensors", model_dirs=[folder])
    local_half = load_depth_model(folder / "mine_fp16.safetensors")
    assert next(local_half.model.parameters()).dtype == torch.float32

    images = torch.rand(1, 3, 28, 28, generator=torch.Generator().manual_seed(5))
    with torch.inference_mode():
        expected = raw_depth(local, images)
        assert torch.allclose(raw_depth(from_hub, images), expected, atol=1e-6)
        assert torch.allclose(raw_depth(local_half, images), expected, rtol=0.05, atol=0.05)


def test_non_commercial_models_are_flagged():
    assert not DEPTH_MODELS["small"].non_commercial
    assert DEPTH_MODELS["base"].non_commercial and DEPTH_MODELS["large"].non_commercial
    for spec in DEPTH_MODELS.values():
        assert len(spec.hub_file.revision) == 40


def test_the_activation_estimate_follows_the_processing_size_and_the_chunk():
    from depthstyle.depthstyle_core.depth import ACTIVATION_BYTES_PER_PIXEL, activation_bytes, processing_size

    one = activation_bytes(480, 640, 518, batch=1)
    height, width = processing_size(480, 640, 518)
    assert one == height * width * ACTIVATION_BYTES_PER_PIXEL
    assert activation_bytes(480, 640, 518, batch=10) == 4 * one, "chunks of 4 run at a time"
    assert activation_bytes(480, 640, 266, batch=1) < one / 3
