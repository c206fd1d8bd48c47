"""The structure metrics: SSIM parity with scikit-image, the edge detector and its tolerance, depth
alignment and agreement, and the whole report through a tiny random-weight depth network and VGG-16."""

import math

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from skimage.metrics import structural_similarity

from depthstyle.depthstyle_core.depth import load_depth_model
from depthstyle.depthstyle_core.errors import InputImageError
from depthstyle.depthstyle_core.models.vgg import load_vgg16
from depthstyle.depthstyle_core.report.depth_agreement import (
    VALID_FRACTION,
    align_disparity,
    depth_agreement,
    spearman_rho,
)
from depthstyle.depthstyle_core.report.edges import detect_edges, edge_agreement, hysteresis
from depthstyle.depthstyle_core.report.figure import draw_comparison_figure, draw_structure_figure
from depthstyle.depthstyle_core.report.metrics import (
    METRIC_NAMES,
    StructureMetrics,
    evaluate_structure,
    mean_metrics,
    metrics_json,
)
from depthstyle.depthstyle_core.report.ssim import ssim

from .factories import write_depth_checkpoint, write_vgg_checkpoint


def scene(height: int, width: int, seed: int = 0) -> torch.Tensor:
    """A greyscale ``[1,1,H,W]`` picture with outlines: a ramp, a disc, a rectangle, a little noise."""
    gen = torch.Generator().manual_seed(seed)
    y, x = torch.meshgrid(
        torch.arange(height, dtype=torch.float64), torch.arange(width, dtype=torch.float64), indexing="ij"
    )
    image = 0.2 + 0.1 * x / width
    image = torch.where(
        (x - 0.4 * width) ** 2 + (y - 0.5 * height) ** 2 < (0.25 * min(height, width)) ** 2, 0.8, image
    )
    image = torch.where(
        (x > 0.65 * width) & (x < 0.9 * width) & (y > 0.15 * height) & (y < 0.55 * height), 0.5, image
    )
    return (image + 0.01 * torch.randn(height, width, generator=gen, dtype=torch.float64)).clamp(0, 1)[
        None, None
    ]


def colour_scene(height: int, width: int) -> torch.Tensor:
    grey = scene(height, width).float()
    y, x = torch.meshgrid(torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij")
    return torch.cat([grey, 0.5 * grey + 0.5 * x[None, None], 0.7 * grey + 0.3 * y[None, None]], dim=1)


# --- SSIM ------------------------------------------------------------------------------------------


def skimage_ssim(a: torch.Tensor, b: torch.Tensor) -> float:
    return structural_similarity(
        a[0, 0].double().numpy(),
        b[0, 0].double().numpy(),
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=1,
    )


@pytest.mark.parametrize("size", [(11, 11), (37, 53), (64, 64), (100, 23), (12, 131)])
def test_ssim_matches_scikit_image_on_random_and_structured_images(size):
    gen = torch.Generator().manual_seed(sum(size))
    noise = torch.rand(1, 1, *size, generator=gen)
    noisy_copy = (noise + 0.3 * torch.rand(1, 1, *size, generator=gen)).clamp(0, 1)
    picture = scene(*size)
    blurred = torch.nn.functional.avg_pool2d(picture, 3, stride=1, padding=1, count_include_pad=False)
    darker = 0.6 * picture + 0.1
    for a, b in [(noise, noisy_copy), (picture, blurred), (picture, darker), (noise, picture)]:
        assert float(ssim(a, b)[0]) == pytest.approx(skimage_ssim(a, b), abs=1e-4)


def test_ssim_is_one_for_identical_images_and_per_image_in_a_batch():
    a = torch.rand(3, 1, 20, 30, generator=torch.Generator().manual_seed(1))
    b = a.clone()
    b[1] = 1 - b[1]
    values = ssim(a, b)
    assert values.shape == (3,)
    assert values[0] == pytest.approx(1.0, abs=1e-12) and values[2] == pytest.approx(1.0, abs=1e-12)
    assert float(values[1]) == pytest.approx(skimage_ssim(a[1:2], b[1:2]), abs=1e-4) and values[1] < 0


def test_ssim_refuses_images_smaller_than_its_window():
    with pytest.raises(InputImageError, match="at least 11x11"):
        ssim(torch.rand(1, 1, 10, 40), torch.rand(1, 1, 10, 40))


# --- edges -----------------------------------------------------------------------------------------


def test_a_one_pixel_shift_is_forgiven_by_the_edge_tolerance_and_not_without_it():
    big = scene(102, 130)
    content, shifted = big[..., :100, :128], big[..., 1:101, 1:129]  # one pixel right and down
    content_edges, shifted_edges = detect_edges(content), detect_edges(shifted)
    assert 200 < int(content_edges.sum()) < 1000, "the outlines of the disc and the rectangle"
    assert edge_agreement(content_edges, shifted_edges, tolerance=0).f1 < 0.3
    assert edge_agreement(content_edges, shifted_edges, tolerance=1).f1 > 0.98
    assert edge_agreement(content_edges, content_edges, tolerance=0).f1 == 1.0


def test_edge_thresholds_adapt_to_contrast_and_ignore_flat_images():
    picture = scene(80, 90)
    edges = detect_edges(picture)
    faint = detect_edges(0.4 * picture + 0.3)
    assert int((edges & faint).sum()) / int((edges | faint).sum()) > 0.95
    assert not detect_edges(torch.full((1, 1, 40, 40), 0.5)).any()
    assert not detect_edges(0.5 + 0.002 * torch.rand(1, 1, 40, 40)).any(), "noise below the floor"


def test_edge_f1_counts_precision_and_recall_within_the_tolerance():
    reference = torch.zeros(1, 20, 20, dtype=torch.bool)
    reference[0, 10, 2:12] = True  # 10 pixels
    test = torch.zeros_like(reference)
    test[0, 11, 2:7] = True  # 5 pixels one row lower, near half the reference
    test[0, 2, 15:20] = True  # 5 pixels far away
    result = edge_agreement(reference, test, tolerance=1)
    assert result.precision == pytest.approx(0.5) and result.recall == pytest.approx(6 / 10)
    assert result.f1 == pytest.approx(2 * 0.5 * 0.6 / 1.1)
    empty = torch.zeros_like(reference)
    assert edge_agreement(empty, empty).f1 == 1.0
    assert edge_agreement(reference, empty).f1 == 0.0 and edge_agreement(empty, reference).f1 == 0.0
    with pytest.raises(ValueError, match=">= 0"):
        edge_agreement(reference, test, tolerance=-1)


def reference_hysteresis(strong: torch.Tensor, weak: torch.Tensor) -> torch.Tensor:
    """Breadth-first search from every strong pixel through 8-connected weak pixels."""
    height, width = weak.shape
    keep = torch.zeros_like(weak)
    queue = [(int(y), int(x)) for y, x in torch.nonzero(strong & weak)]
    for y, x in queue:
        keep[y, x] = True
    while queue:
        y, x = queue.pop()
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                ny, nx = y + dy, x + dx
                if 0 <= ny < height and 0 <= nx < width and weak[ny, nx] and not keep[ny, nx]:
                    keep[ny, nx] = True
                    queue.append((ny, nx))
    return keep


def test_hysteresis_keeps_exactly_the_weak_pixels_connected_to_strong_ones():
    gen = torch.Generator().manual_seed(4)
    for _ in range(30):
        height, width = torch.randint(1, 40, (2,), generator=gen).tolist()
        values = torch.rand(height, width, generator=gen)
        strong, weak = values > 0.9, values > 0.3 + 0.4 * float(torch.rand(1, generator=gen))
        assert torch.equal(hysteresis(strong, weak), reference_hysteresis(strong, weak))
    snake = torch.zeros(120, 120, dtype=torch.bool)  # one long winding edge, strong at one end only
    snake[::4] = True
    for row in range(0, 116, 8):
        snake[row : row + 4, -1] = True
        snake[row + 4 : row + 8, 0] = True
    seed = torch.zeros_like(snake)
    seed[116, 60] = True
    assert torch.equal(hysteresis(seed, snake), snake)
    assert not hysteresis(torch.zeros_like(snake), snake).any()


# --- depth -----------------------------------------------------------------------------------------


def disparity(height: int = 40, width: int = 50) -> torch.Tensor:
    y, x = torch.meshgrid(torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij")
    return (0.5 + 4 * y + torch.sin(6 * x) + 2 * ((x - 0.5) ** 2 + (y - 0.4) ** 2 < 0.05)).double()


def test_alignment_recovers_a_known_scale_and_shift():
    reference = disparity()
    prediction = (reference - 0.7) / 2.5  # reference = 2.5 * prediction + 0.7
    scale, shift = align_disparity(prediction, reference)
    assert scale == pytest.approx(2.5, abs=1e-9) and shift == pytest.approx(0.7, abs=1e-9)
    valid = reference > 2
    corrupted = torch.where(valid, prediction, torch.full_like(prediction, 100.0))
    assert align_disparity(corrupted, reference, valid) == pytest.approx((2.5, 0.7), abs=1e-9)


def test_alignment_never_uses_a_negative_scale():
    reference = disparity()
    scale, shift = align_disparity(-reference, reference)
    assert scale == 0.0 and shift == pytest.approx(float(reference.mean()))
    assert align_disparity(torch.full_like(reference, 3.0), reference) == (
        0.0,
        pytest.approx(float(reference.mean())),
    )


def test_depth_agreement_is_perfect_for_identical_and_affinely_changed_maps():
    reference = disparity()
    for prediction in (reference, 0.3 * reference + 1.5):
        result = depth_agreement(prediction, reference)
        assert result.absrel == pytest.approx(0.0, abs=1e-9)
        assert result.delta1 == 1.0 and result.spearman == pytest.approx(1.0)
        assert float(torch.nan_to_num(result.error).max()) < 1e-9


def test_inverted_depth_gives_negative_spearman_and_a_bad_absrel():
    reference = disparity()
    result = depth_agreement(reference.max() + reference.min() - reference, reference)
    assert result.spearman == pytest.approx(-1.0, abs=1e-9)
    assert result.scale == 0.0, "an inverted map must not be fitted by a negative scale"
    assert result.absrel > 0.3 and result.delta1 < 0.6


def test_depth_agreement_matches_a_hand_computation_and_guards_tiny_and_negative_values():
    reference = torch.tensor([[4.0, 2.0, 1.0, 0.0, -1.0]], dtype=torch.float64)  # 0 and -1: no depth (sky)
    prediction = torch.tensor([[2.0, 1.0, 1.0, -3.0, 0.5]], dtype=torch.float64)
    result = depth_agreement(prediction, reference)
    assert result.valid.tolist() == [[True, True, True, False, False]]
    p, r = np.array([2.0, 1.0, 1.0]), np.array([4.0, 2.0, 1.0])
    scale, shift = np.polyfit(p, r, 1)
    assert (result.scale, result.shift) == pytest.approx((scale, shift), abs=1e-9)
    aligned = np.maximum(scale * p + shift, VALID_FRACTION * 4.0)
    depth_p, depth_r = 1 / aligned, 1 / r
    assert result.absrel == pytest.approx(np.mean(np.abs(depth_p - depth_r) / depth_r), abs=1e-12)
    ratio = np.maximum(depth_p / depth_r, depth_r / depth_p)
    assert result.delta1 == pytest.approx(np.mean(ratio < 1.25))
    aligned_map = result.aligned[0]
    assert float(aligned_map[3]) == VALID_FRACTION * 4.0, "a negative aligned value is clamped to the floor"
    assert math.isnan(float(result.error[0, 3])) and math.isfinite(result.absrel)


def test_depth_agreement_without_any_valid_pixel_is_undefined_not_an_error():
    result = depth_agreement(torch.rand(8, 8), torch.zeros(8, 8))
    assert math.isnan(result.absrel) and math.isnan(result.delta1) and math.isnan(result.spearman)


def test_spearman_matches_scipy_with_ties():
    gen = torch.Generator().manual_seed(3)
    a = torch.randint(0, 5, (30, 7), generator=gen).double()  # many ties
    b = a + torch.randint(0, 3, (30, 7), generator=gen).double()
    assert spearman_rho(a, b) == pytest.approx(spearmanr(a.flatten(), b.flatten()).statistic, abs=1e-12)
    assert math.isnan(spearman_rho(torch.ones(4, 4), a[:4, :4]))


# --- the whole report ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def networks(tmp_path_factory, single_thread):
    folder = tmp_path_factory.mktemp("metric_models")
    depth = load_depth_model(write_depth_checkpoint(folder / "depth.safetensors", seed=1))
    vgg = load_vgg16(write_vgg_checkpoint(folder / "vgg.safetensors"))
    return depth, vgg


def test_identical_images_get_perfect_scores(networks):
    depth, vgg = networks
    photo = colour_scene(45, 61)
    (report,) = evaluate_structure(photo, photo.clone(), depth, style=photo, vgg=vgg, resolution=28)
    m = report.metrics
    assert m.depth_absrel == pytest.approx(0.0, abs=1e-6) and m.depth_delta1 == 1.0
    assert m.depth_spearman == pytest.approx(1.0, abs=1e-9)
    assert (m.edge_f1, m.edge_precision, m.edge_recall) == (1.0, 1.0, 1.0)
    assert m.ssim == pytest.approx(1.0, abs=1e-12)
    assert m.style_distance == pytest.approx(0.0, abs=1e-12)
    assert report.content_depth.shape == (45, 61) and report.depth.aligned.shape == (45, 61)


def test_a_changed_image_scores_worse_on_every_metric(networks):
    depth, vgg = networks
    photo = colour_scene(45, 61)
    noisy = (photo + 0.25 * torch.randn(photo.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    reports = evaluate_structure(photo, torch.cat([photo, noisy]), depth, style=photo, vgg=vgg, resolution=28)
    same, changed = (r.metrics for r in reports)
    assert changed.depth_absrel > same.depth_absrel + 0.01 and changed.depth_delta1 < same.depth_delta1
    assert changed.depth_spearman < 0.99 and changed.edge_f1 < 0.9 and changed.ssim < 0.5
    assert changed.style_distance > 0


def test_one_content_image_serves_a_batch_and_other_sizes_are_resized(networks):
    depth, _ = networks
    photo = colour_scene(30, 40)
    batch = torch.cat([photo, 1 - photo])
    reports = evaluate_structure(photo, batch, depth, resolution=28)
    assert len(reports) == 2 and reports[0].metrics.ssim == pytest.approx(1.0)
    assert reports[0].metrics.style_distance is None
    resized = evaluate_structure(
        photo, torch.nn.functional.interpolate(photo, size=(60, 80)), depth, resolution=28
    )
    assert resized[0].stylized.shape == (3, 30, 40) and resized[0].metrics.ssim > 0.9
    with pytest.raises(InputImageError, match="2 content images and 3 stylised images"):
        evaluate_structure(batch, torch.cat([batch, photo]), depth, resolution=28)
    with pytest.raises(InputImageError, match="at least 14x14"):
        evaluate_structure(photo[..., :12, :], photo[..., :12, :], depth, resolution=28)
    with pytest.raises(ValueError, match="VGG-16"):
        evaluate_structure(photo, photo, depth, style=photo, resolution=28)


def test_means_skip_undefined_values_and_json_has_no_nan():
    a = StructureMetrics(0.1, 0.9, math.nan, 0.5, 0.4, 0.6, 0.7)
    b = StructureMetrics(0.3, 0.7, 0.5, 0.7, 0.6, 0.8, 0.9)
    means = mean_metrics([a, b])
    assert list(means) == list(METRIC_NAMES)
    assert means["depth_absrel"] == pytest.approx(0.2) and means["depth_spearman"] == pytest.approx(0.5)
    assert means["style_distance"] is None
    assert a.as_dict()["depth_spearman"] is None


def panel_runs(row: np.ndarray) -> list[tuple[int, int]]:
    """(start, width) of each run of non-white pixels along a row of the figure."""
    inside = (row != 255).any(axis=-1)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], inside.astype(int), [0]])))
    return [(int(a), int(b - a)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def test_figures_show_the_images_and_print_the_numbers(networks):
    depth, _ = networks
    photo = colour_scene(50, 64)
    reports = evaluate_structure(photo, torch.cat([photo, 1 - photo]), depth, resolution=28)
    pixels = np.asarray(draw_structure_figure(reports[1], panel_height=100)).astype(int)
    top = 26  # a title line and a gap
    runs = panel_runs(pixels[top + 50])
    assert [width for _, width in runs] == [128] * 5, "five panels of 64x50 scaled to a height of 100"
    for (start, width), expected in zip(runs[:2], (photo, 1 - photo), strict=False):
        panel = pixels[top : top + 100, start : start + width]
        assert np.abs(panel.mean(axis=(0, 1)) - 255 * expected.mean(dim=(0, 2, 3)).numpy()).max() < 6
    assert (pixels[top - 2] == 255).all() and (pixels[top + 100] == 255).all(), "the panels are 100 px high"
    caption = pixels[top + 108 :, runs[0][0] : runs[1][0] + runs[1][1]]
    assert (caption < 128).sum() > 200, "the metrics are printed below the panels"
    comparison = np.asarray(draw_comparison_figure([("a", reports[0]), ("b", reports[1])], panel_height=60))
    assert [width for _, width in panel_runs(comparison[top + 30])] == [77] * 3, "photo | model a | model b"
    assert len(panel_runs(comparison[top + 2 * 68 + 30])) == 2, "error maps under the models only"
    json_ready = metrics_json(reports, {"depth_model": "tiny"})
    assert json_ready["settings"] == {"depth_model": "tiny"} and len(json_ready["images"]) == 2
