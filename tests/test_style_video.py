"""stylize(frames="shared"): statistics pooled over the batch, exact under chunks and tiles, less flicker."""

from __future__ import annotations

import pytest
import torch

from depthstyle.depthstyle_core import tiling
from depthstyle.depthstyle_core.models.transformer_net import TransformerNetConfig
from depthstyle.depthstyle_core.stylize import stylize

from .bench_modules import bench_module
from .style_helpers import lively_net, textured_images

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def net():
    return lively_net(seed=5)


@pytest.fixture(scope="module")
def frames() -> torch.Tensor:
    return textured_images(5, 40, 36, seed=6)


@pytest.fixture(scope="module")
def shared(net, frames) -> torch.Tensor:
    return stylize(net, frames, frames="shared", chunk_size=5)


def test_shared_statistics_cut_the_flicker_of_a_pan_at_least_in_half():
    bench = bench_module("flicker_bench")
    count, size, shift = 16, 128, 16
    photo = bench.synthetic_photo(size + 32, size + (count - 1) * shift + 32)
    pan = bench.pan_frames(photo, count, size, shift)
    net = bench.random_style_net()
    result = bench.measure(lambda frames, mode: stylize(net, frames, frames=mode), pan, shift)
    assert result["input_flicker"] == 0.0, "the frames are exact crops: they agree over the overlap"
    assert result["independent_flicker"] > 0.02, "the test network must paint visibly"
    assert result["shared_flicker"] <= result["independent_flicker"] / 2, result


def test_shared_is_one_pass_with_statistics_pooled_over_the_batch(net, frames, shared):
    with torch.no_grad():
        reference = net(frames, pool_batch=True).clamp(0, 1)
    torch.testing.assert_close(shared, reference, atol=1e-6, rtol=0)
    independent = stylize(net, frames)
    assert (shared - independent).abs().mean() > 0.01, "pooling must change frames that differ"


def test_identical_frames_look_the_same_in_both_modes(net, frames):
    repeated = frames[:1].expand(3, -1, -1, -1)
    torch.testing.assert_close(
        stylize(net, repeated, frames="shared"), stylize(net, repeated), atol=1e-5, rtol=0
    )


def test_chunks_give_the_same_result_as_one_pass(net, frames, shared):
    calls = []
    chunked = stylize(net, frames, frames="shared", chunk_size=2, on_progress=lambda *c: calls.append(c))
    torch.testing.assert_close(chunked, shared, atol=1e-5, rtol=0)
    assert [(d, t) for d, t, _ in calls] == [(5, 10), (7, 10), (9, 10), (10, 10)], "statistics, 3 chunks"
    assert calls[-1][2].shape == (3, 40, 36)


def test_shared_frames_work_with_a_brush_size_and_chunks(net, frames):
    whole = stylize(net, frames, frames="shared", scale=0.5, chunk_size=5)
    torch.testing.assert_close(stylize(net, frames, frames="shared", scale=0.5, chunk_size=2), whole)
    assert whole.shape == frames.shape


def test_statistics_gathered_layer_by_layer_over_chunks_and_tiles_are_exact(net, monkeypatch):
    strip = textured_images(3, 168, 12, seed=7)
    reference = stylize(net, strip, frames="shared", chunk_size=3)
    monkeypatch.setattr(tiling, "STATS_MAX_PIXELS", 0)  # no one-pass statistics: layer by layer
    calls = []
    tiled = stylize(
        net,
        strip,
        frames="shared",
        chunk_size=2,
        tile_size=152,
        tile_overlap=120,
        on_progress=lambda *c: calls.append(c[:2]),
    )
    assert (tiled - reference).abs().max().item() <= 2 / 255
    layers = len(net.norm_layers())
    statistics = 3 * 2 * layers  # image passes: 3 images x 2 tiles x each layer, in 2 chunks
    assert len(calls) == 2 * 2 * layers + 4, "a report per chunk and tile, then 2 chunks x 2 tiles of output"
    assert calls[2 * 2 * layers - 1] == (statistics, statistics + 3 * 2)
    assert calls[-1] == (statistics + 6, statistics + 6)
    unchunked = stylize(net, strip, frames="shared", chunk_size=2)  # layer by layer, whole images
    torch.testing.assert_close(unchunked, reference, atol=1e-5, rtol=0)


def test_one_chunk_with_tiles_pools_over_its_images(net, monkeypatch):
    strip = textured_images(2, 168, 12, seed=8)
    reference = stylize(net, strip, frames="shared")
    monkeypatch.setattr(tiling, "STATS_MAX_PIXELS", 0)
    tiled = stylize(net, strip, frames="shared", tile_size=152, tile_overlap=120)
    assert (tiled - reference).abs().max().item() <= 2 / 255
    assert (tiled - stylize(net, strip, tile_size=152, tile_overlap=120)).abs().mean() > 0.01


def test_batch_norm_networks_have_no_per_frame_statistics():
    bn = lively_net(TransformerNetConfig(norm="batch"), seed=2)
    images = textured_images(3, 20, 24)
    shared = stylize(bn, images, frames="shared", chunk_size=2)
    assert torch.equal(shared, stylize(bn, images, chunk_size=2))


def test_unknown_frames_mode_is_named(net):
    with pytest.raises(
        ValueError, match=r"frames must be one of \('independent', 'shared', 'flow'\), got 'video'"
    ):
        stylize(net, torch.rand(1, 3, 8, 8), frames="video")
