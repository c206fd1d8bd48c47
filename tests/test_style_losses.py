"""Loss terms (hand-computed values, invariances, fp32) and scale-free weighting by calibration."""

from __future__ import annotations

import pytest
import torch

from depthstyle.depthstyle_core.errors import TrainingError
from depthstyle.depthstyle_core.losses import (
    LossBalancer,
    LossWeights,
    content_loss,
    depth_loss,
    gram_matrix,
    normalize_depth_ssi,
    style_loss,
    style_targets,
    total_variation,
)

pytestmark = pytest.mark.usefixtures("single_thread")


def test_gram_matrix_is_normalised_by_channels_times_pixels():
    # two channels of a 2x2 map: rows of F are [1,2,3,4] and [0,1,0,1]
    features = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[0.0, 1.0], [0.0, 1.0]]]])
    expected = torch.tensor([[[30.0, 6.0], [6.0, 2.0]]]) / 8  # F F^T / (C*H*W), C*H*W = 2*2*2
    assert torch.equal(gram_matrix(features), expected)


def test_gram_matrix_is_fp32_under_low_precision():
    features = torch.rand(2, 4, 8, 8)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        gram = gram_matrix(features.bfloat16())
    assert gram.dtype == torch.float32
    torch.testing.assert_close(gram, gram_matrix(features.bfloat16().float()))


def test_content_loss_is_the_mean_squared_difference():
    a = torch.tensor([[[[1.0, 2.0]]]])
    b = torch.tensor([[[[0.0, 4.0]]]])
    assert content_loss(a, b).item() == pytest.approx((1 + 4) / 2)


def test_style_loss_sums_layers_and_compares_every_image_with_one_style():
    torch.manual_seed(0)
    style = {"a": torch.rand(1, 3, 4, 4), "b": torch.rand(1, 5, 2, 2)}
    targets = style_targets(style, layers=("a", "b"))
    assert targets["a"].shape == (1, 3, 3)
    batch = {name: torch.cat([value, torch.rand_like(value)]) for name, value in style.items()}
    loss = style_loss(batch, targets)
    expected = sum(
        ((gram_matrix(batch[name])[1] - targets[name][0]) ** 2).mean() / 2 for name in ("a", "b")
    )  # image 0 is the style itself (zero difference), image 1 is not: the mean is over both
    torch.testing.assert_close(loss, expected)
    assert style_loss(style, targets).item() == 0.0


def test_total_variation_by_hand():
    image = torch.tensor([[[[0.0, 1.0], [2.0, 4.0]]]])
    # horizontal differences 1 and 2 -> mean of squares 2.5; vertical 2 and 3 -> 6.5
    assert total_variation(image).item() == pytest.approx(9.0)
    assert total_variation(torch.full((1, 3, 5, 5), 0.3)).item() == 0.0


def test_ssi_depth_loss_ignores_scale_and_shift_of_the_prediction_and_l2_does_not():
    torch.manual_seed(1)
    target = torch.rand(2, 1, 12, 10)
    pred = target + 0.1 * torch.randn(2, 1, 12, 10)
    rescaled = torch.stack([3.0 * pred[0] + 7.0, 0.2 * pred[1] - 1.0])
    base = depth_loss(pred, target, "ssi")
    assert base > 0
    torch.testing.assert_close(depth_loss(rescaled, target, "ssi"), base)
    assert depth_loss(rescaled, target, "l2") > 10 * depth_loss(pred, target, "l2")
    assert depth_loss(target, target, "ssi").item() == 0.0


def test_ssi_depth_loss_notices_inverted_depth():
    target = torch.linspace(0, 1, 64).view(1, 1, 8, 8)
    assert depth_loss(target, target) == 0
    assert depth_loss(-target, target) > 1.0  # near and far swapped


def test_ssi_normalisation_survives_a_flat_map_and_has_gradients():
    flat = torch.full((1, 1, 4, 4), 0.5, requires_grad=True)
    target = torch.rand(1, 1, 4, 4)
    loss = depth_loss(flat, target)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(flat.grad).all()
    normalized = normalize_depth_ssi(torch.tensor([[[[1.0, 2.0, 3.0, 10.0]]]]))
    # median 2 (the lower middle value, as torch.median takes it), mean |d - 2| = (1 + 0 + 1 + 8) / 4 = 2.5
    assert normalized.flatten().tolist() == pytest.approx([-0.4, 0.0, 0.4, 3.2])


def test_depth_loss_checks_shapes_and_mode():
    with pytest.raises(ValueError, match="shape"):
        depth_loss(torch.rand(1, 1, 4, 4), torch.rand(1, 1, 4, 5))
    with pytest.raises(ValueError, match="ssi"):
        depth_loss(torch.rand(1, 1, 4, 4), torch.rand(1, 1, 4, 4), mode="l1")


def test_calibration_makes_each_weighted_term_equal_its_weight():
    weights = LossWeights()  # content 1, style 5, depth 5, tv 1e-6, normalized
    balancer = LossBalancer(weights)
    assert balancer.needs_calibration
    calibration = {
        "content": torch.tensor(12.5),
        "style": torch.tensor(3e-5),
        "depth": torch.tensor(0.8),
        "tv": torch.tensor(0.02),
    }
    magnitudes = balancer.calibrate(calibration)
    assert magnitudes == pytest.approx({k: v.item() for k, v in calibration.items()})
    total, parts = balancer.combine(calibration)
    assert {k: v.item() for k, v in parts.items()} == pytest.approx(
        {"content": 1.0, "style": 5.0, "depth": 5.0, "tv": 1e-6}
    )
    assert total.item() == pytest.approx(11.000001)
    later = {k: v / 2 for k, v in calibration.items()}
    total, parts = balancer.combine(later)  # frozen: a later batch is measured against the same scale
    assert parts["style"].item() == pytest.approx(2.5)
    with pytest.raises(RuntimeError, match="frozen"):
        balancer.calibrate(calibration)


def test_combined_loss_keeps_gradients():
    balancer = LossBalancer(LossWeights(depth=0, tv=0))
    x = torch.tensor(2.0, requires_grad=True)
    balancer.calibrate({"content": 4.0, "style": 0.5})
    total, _ = balancer.combine({"content": x * 2, "style": x**2})
    total.backward()
    assert x.grad.item() == pytest.approx(1 / 4 * 2 + 5 / 0.5 * 4)


def test_resume_with_saved_magnitudes_gives_the_same_scales():
    first = LossBalancer(LossWeights())
    first.calibrate({"content": 2.0, "style": 4.0, "depth": 8.0, "tv": 16.0})
    resumed = LossBalancer(LossWeights(), magnitudes=first.magnitudes)
    assert not resumed.needs_calibration
    assert resumed.scales() == first.scales()


def test_raw_mode_uses_the_weights_as_given():
    weights = LossWeights.raw()
    assert (weights.content, weights.style, weights.mode) == (1e5, 1e10, "raw")
    balancer = LossBalancer(weights)
    assert not balancer.needs_calibration
    total, parts = balancer.combine(
        {"content": torch.tensor(2.0), "style": torch.tensor(3.0), "depth": torch.tensor(1.0)}
    )
    assert parts["content"].item() == pytest.approx(2e5)
    assert parts["style"].item() == pytest.approx(3e10)
    assert "tv" not in parts  # raw preset has no TV term
    with pytest.raises(RuntimeError):
        balancer.calibrate({"content": 1.0})


def test_calibration_errors_are_clear():
    balancer = LossBalancer(LossWeights())
    with pytest.raises(ValueError, match="depth"):
        balancer.calibrate({"content": 1.0, "style": 1.0, "tv": 1.0})
    with pytest.raises(TrainingError, match="tv"):
        balancer.calibrate({"content": 1.0, "style": 1.0, "depth": 1.0, "tv": 0.0})
    with pytest.raises(RuntimeError, match="calibrate"):
        LossBalancer(LossWeights()).combine({"content": torch.tensor(1.0)})
    with pytest.raises(ValueError, match="weight"):
        LossWeights(style=-1.0)
    with pytest.raises(ValueError, match="mode"):
        LossWeights(mode="auto")
