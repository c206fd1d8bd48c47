"""The any-painting trainer's loss terms, on hand-made numbers."""

from __future__ import annotations

import pytest
import torch

from depthstyle.depthstyle_core.any_style.losses import mean_std_loss, signal_contrastive_loss, signal_rows
from depthstyle.depthstyle_core.any_style.model_file import load_any_style_model
from depthstyle.trainers.any_style.config import AnyLossWeights, AnyTrainConfig

from .factories import smooth_images


def test_contrastive_loss_is_own_distance_over_the_mean_distance_to_the_others() -> None:
    paintings = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 4.0]])
    results = torch.tensor([[1.0, 0.0], [2.0, 0.0]])  # painted with paintings 1 and 2 (first=1)
    # result 0: own (painting 1) 1/2, others (paintings 0, 2) (1 + 17) / 2 / 2 = 4.5 -> 1/9
    # result 1: own (painting 2) (4 + 16) / 2 = 10, others (4 + 0) / 2 / 2 = 1 -> 10
    expected = (1 / 9 + 10) / 2
    assert float(signal_contrastive_loss(results, paintings, first=1)) == pytest.approx(expected)
    assert float(signal_contrastive_loss(paintings, paintings)) == 0.0  # each result is its painting


def test_contrastive_loss_refuses_a_single_painting_and_stays_finite_when_all_are_the_same() -> None:
    with pytest.raises(ValueError, match="at least 2 paintings per step; got 1"):
        signal_contrastive_loss(torch.ones(1, 4), torch.ones(1, 4))
    same = torch.ones(3, 4)  # one painting three times: own and other distances are equal ...
    assert float(signal_contrastive_loss(same + 0.5, same)) == 1.0
    assert float(signal_contrastive_loss(same, same)) == 0.0  # ... and 0 / 0 is not NaN


def test_signal_rows_hold_both_stages_of_the_networks_signals_and_mean_std_loss_compares_statistics() -> None:
    net = load_any_style_model()
    with torch.no_grad():
        rows = signal_rows(net.style_signals(smooth_images(3, 24, 28, seed=3)))
    assert rows.shape == (3, 2 * 4 * 64) and rows.dtype == torch.float32
    assert float((rows[0] - rows[1]).abs().max()) > 1e-3
    features = torch.randn(2, 5, 6, 7, generator=torch.Generator().manual_seed(0))
    assert float(mean_std_loss(features, features)) == 0.0
    shifted = float(mean_std_loss(features + 1.0, features))  # the means differ by 1, the spreads not
    assert shifted == pytest.approx(1.0, rel=1e-5)


def test_settings_check_their_values() -> None:
    with pytest.raises(ValueError, match="load_size"):
        AnyTrainConfig(image_size=256, load_size=128)
    with pytest.raises(ValueError, match="contrastive weight must be a finite number"):
        AnyTrainConfig(contrastive_weight=float("nan"))
    with pytest.raises(ValueError, match="nothing to train"):
        AnyLossWeights(content=0, style=0, contrastive=0, depth=0)
    config = AnyTrainConfig(lr=1e-4, lr_decay=5e-5)
    assert config.lr_at(0) == 1e-4 and config.lr_at(20_000) == pytest.approx(5e-5)
    assert AnyTrainConfig.from_dict(config.to_dict()) == config
