"""stylize(): seam-free tiling, any size, strength, colour, OOM recovery, precision and callbacks."""

from __future__ import annotations

import pytest
import torch

from depthstyle.depthstyle_core import tiling
from depthstyle.depthstyle_core.errors import OperationCancelled
from depthstyle.depthstyle_core.models.transformer_net import (
    RECEPTIVE_RADIUS,
    TransformerNet,
    TransformerNetConfig,
)
from depthstyle.depthstyle_core.stylize import DEFAULT_OVERLAP, luminance, stylize

from .style_helpers import lively_net, textured_images

CHROMA = torch.tensor([[-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])  # BT.601 Cb, Cr rows


pytestmark = pytest.mark.usefixtures("single_thread")


class FlakyNet(TransformerNet):
    """Raises torch.OutOfMemoryError, as CUDA would, for inputs larger than ``limit`` pixels."""

    def __init__(self, base: TransformerNet, limit: int, stats_limit: int | None = None) -> None:
        super().__init__(base.config)
        self.load_state_dict(base.state_dict())
        self.limit = limit
        self.stats_limit = stats_limit
        self.forward_sizes: list[tuple[int, int]] = []
        self.stats_sizes: list[tuple[int, int]] = []

    def forward(self, x, norm_stats=None):
        self.forward_sizes.append(tuple(x.shape[-2:]))
        if x.shape[-2] * x.shape[-1] > self.limit:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return super().forward(x, norm_stats)

    def norm_stats(self, x):
        self.stats_sizes.append(tuple(x.shape[-2:]))
        if self.stats_limit is not None and x.shape[-2] * x.shape[-1] > self.stats_limit:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return super().norm_stats(x)


@pytest.fixture(scope="module")
def net() -> TransformerNet:
    return lively_net()


@pytest.fixture(scope="module")
def image() -> torch.Tensor:
    return textured_images(1, 171, 169)  # neither side a multiple of 4; big enough for 2 x 2 tiles


@pytest.fixture(scope="module")
def untiled(net, image) -> torch.Tensor:
    return stylize(net, image)


@pytest.fixture(scope="module")
def small() -> torch.Tensor:
    return textured_images(2, 45, 38, seed=8)


@pytest.fixture(scope="module")
def small_styled(net, small) -> torch.Tensor:
    return stylize(net, small)


def test_the_test_net_produces_a_full_range_image(untiled, small_styled):
    for styled in (untiled, small_styled):
        assert styled.std() > 0.15
        assert 0.3 < styled.mean() < 0.7


def test_tiled_equals_untiled_with_a_receptive_field_overlap(net, image, untiled):
    assert 2 * RECEPTIVE_RADIUS <= 120 <= DEFAULT_OVERLAP
    totals = []
    tiled = stylize(net, image, tile_size=152, tile_overlap=120, on_progress=lambda d, t, p: totals.append(t))
    assert totals[-1] == 2 * 2  # it did tile: 2 x 2 tiles (step 152 - 120 = 32)
    assert (tiled - untiled).abs().max().item() <= 2 / 255


def test_tiles_without_enough_overlap_show_seams(net, image, untiled):
    """The agreement above is not automatic: too small an overlap gives visible differences."""
    tiled = stylize(net, image, tile_size=64, tile_overlap=0)
    assert (tiled - untiled).abs().max().item() > 20 / 255


def test_statistics_built_from_tiles_are_exact(net, monkeypatch):
    """Images too large for one statistics pass get them layer by layer from tiles: still seam-free and
    equal to the untiled result (a thin image keeps this test fast: 2 tiles x 15 layers)."""
    strip = textured_images(1, 168, 12, seed=4)
    reference = stylize(net, strip)
    monkeypatch.setattr(tiling, "STATS_MAX_PIXELS", 0)
    calls = []
    tiled = stylize(
        net, strip, tile_size=152, tile_overlap=120, on_progress=lambda d, t, p: calls.append((d, t))
    )
    assert [d for d, _ in calls] == list(range(1, 33))  # 2 tiles x (15 statistics passes + the output pass)
    assert {t for _, t in calls} == {32}
    assert (tiled - reference).abs().max().item() <= 2 / 255


def test_tiles_need_the_shared_statistics(net):
    """Each tile normalised with its own statistics differs from the whole image; with the shared ones it
    matches away from the tile border."""
    x = textured_images(1, 160, 24, seed=3)
    with torch.no_grad():
        whole = net(x)
        stats = net.norm_stats(x)
        shared = net(x[..., :100, :], stats)
        own = net(x[..., :100, :])
    inner = (..., slice(0, 100 - RECEPTIVE_RADIUS), slice(None))
    assert (shared[inner] - whole[inner]).abs().max() < 1e-4
    assert (own[inner] - whole[inner]).abs().max() > 5 / 255


@pytest.mark.parametrize("size", [(7, 5), (1, 1), (3, 9), (17, 30)])
def test_any_size_and_greyscale(net, size):
    grey = torch.rand(2, 1, *size)
    out = stylize(net, grey)
    assert out.shape == (2, 3, *size) and out.dtype == torch.float32
    assert out.min() >= 0 and out.max() <= 1
    torch.testing.assert_close(out, stylize(net, grey.expand(-1, 3, -1, -1)))


def test_strength_zero_returns_the_input_exactly(net):
    images = torch.rand(2, 3, 9, 11)
    out = stylize(net, images, strength=0.0)
    assert torch.equal(out, images)
    assert out.data_ptr() != images.data_ptr()


def test_strength_blends_linearly(net, small, small_styled):
    half = stylize(net, small, strength=0.5)
    torch.testing.assert_close(half, 0.5 * small + 0.5 * small_styled, atol=1e-6, rtol=0)


def test_preserve_color_keeps_the_content_chroma_and_takes_the_style_luminance(net, small, small_styled):
    image, untiled = small, small_styled
    out = stylize(net, image, preserve_color=True)
    unclipped = ((out > 0) & (out < 1)).all(dim=1)
    assert unclipped.float().mean() > 0.6
    chroma = torch.einsum("kc,bchw->bkhw", CHROMA, out)
    content_chroma = torch.einsum("kc,bchw->bkhw", CHROMA, image)
    difference = (chroma - content_chroma).abs().amax(dim=1)[unclipped]
    assert difference.max() < 1e-5
    assert (luminance(out) - luminance(untiled)).abs()[unclipped.unsqueeze(1)].max() < 1e-5
    assert (torch.einsum("kc,bchw->bkhw", CHROMA, untiled) - content_chroma).abs().max() > 0.1


def test_chunks_give_the_same_result_and_progress_counts_images(net):
    images = textured_images(5, 24, 20)
    calls = []
    out = stylize(net, images, chunk_size=2, on_progress=lambda d, t, p: calls.append((d, t, p)))
    assert [(d, t) for d, t, _ in calls] == [(2, 5), (4, 5), (5, 5)]
    assert all(p.shape == (3, 24, 20) for _, _, p in calls)
    torch.testing.assert_close(calls[1][2], out[2])
    torch.testing.assert_close(out, stylize(net, images, chunk_size=5))


def test_should_stop_cancels(net):
    images = torch.rand(3, 3, 16, 16)
    answers = iter([False, True])
    with pytest.raises(OperationCancelled, match="1 of 3"):
        stylize(net, images, chunk_size=1, should_stop=lambda: next(answers))


def test_half_precision_falls_back_to_fp32_on_cpu(net):
    images = torch.rand(1, 3, 20, 20)
    for precision in ("fp16", "bf16"):
        out = stylize(net, images, precision=precision)
        assert out.dtype == torch.float32
        assert torch.equal(out, stylize(net, images))
    with pytest.raises(ValueError, match="precision"):
        stylize(net, images, precision="fp8")


def test_reduced_precision_path_keeps_statistics_and_output_in_fp32(net, small, small_styled):
    """The autocast path that CUDA takes, exercised with bf16 on the CPU."""
    runner = tiling.Runner(net, torch.bfloat16)
    with torch.no_grad():
        out = runner(small).clamp(0, 1)
        mean, var = runner.norm_stats(small)["res2.in1"]
    assert out.dtype == mean.dtype == var.dtype == torch.float32
    assert (out - small_styled).abs().mean() < 0.03  # bf16 has 8 bits of mantissa


def test_out_of_memory_halves_the_tile_and_retries(net, monkeypatch):
    image = textured_images(1, 80, 12, seed=5)
    flaky = FlakyNet(net, limit=80 * 12 - 1)
    out = stylize(flaky, image, tile_overlap=8)
    assert flaky.forward_sizes[0] == (80, 12)  # the whole image first: out of memory
    assert set(flaky.forward_sizes[1:]) == {(40, 12), (16, 12)}  # then tiles of half the side (last: 64..80)
    assert flaky.stats_sizes == []  # no whole-image statistics pass after running out of memory
    monkeypatch.setattr(tiling, "STATS_MAX_PIXELS", 0)
    torch.testing.assert_close(out, stylize(net, image, tile_size=40, tile_overlap=8), atol=1e-6, rtol=0)


def test_out_of_memory_in_the_statistics_pass_builds_them_from_tiles(net, monkeypatch):
    image = textured_images(1, 80, 12, seed=6)
    flaky = FlakyNet(net, limit=40 * 12, stats_limit=100)
    out = stylize(flaky, image, tile_size=40, tile_overlap=8)
    assert flaky.stats_sizes == [(80, 12)]  # tried once, out of memory
    assert set(flaky.forward_sizes) == {(40, 12), (16, 12)}  # the tile size was not reduced
    monkeypatch.setattr(tiling, "STATS_MAX_PIXELS", 0)
    torch.testing.assert_close(out, stylize(net, image, tile_size=40, tile_overlap=8), atol=1e-6, rtol=0)


def test_out_of_memory_at_the_smallest_tile_is_raised(net):
    flaky = FlakyNet(net, limit=10)
    with pytest.raises(torch.OutOfMemoryError):
        stylize(flaky, textured_images(1, 64, 64), tile_overlap=8)


def test_batch_norm_net_tiles_without_statistics():
    bn = lively_net(TransformerNetConfig(norm="batch"), seed=2)
    image = textured_images(1, 168, 12)
    torch.testing.assert_close(
        stylize(bn, image, tile_size=152, tile_overlap=120), stylize(bn, image), atol=2 / 255, rtol=0
    )


def test_training_mode_is_restored_and_arguments_are_checked(net):
    net.train()
    try:
        stylize(net, torch.rand(1, 3, 8, 8))
        assert net.training
    finally:
        net.eval()
    with pytest.raises(ValueError, match="strength"):
        stylize(net, torch.rand(1, 3, 8, 8), strength=1.5)
    with pytest.raises(ValueError, match="tile_size"):
        stylize(net, torch.rand(1, 3, 8, 8), tile_size=100, tile_overlap=128)
