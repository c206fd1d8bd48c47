"""Training files: resume state, loss log (JSON/CSV), loss-curve PNG, run paths and settings."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from depthstyle.depthstyle_core.errors import CheckpointError
from depthstyle.depthstyle_core.models.transformer_net import TransformerNet, TransformerNetConfig
from depthstyle.depthstyle_core.style_model import save_style_model
from depthstyle.trainers.fast.config import TrainConfig
from depthstyle.trainers.run.loss_curve import SERIES_COLOURS, draw_loss_curve, write_loss_curve
from depthstyle.trainers.run.loss_log import CSV_COLUMNS, LossLog
from depthstyle.trainers.run.paths import TrainPaths
from depthstyle.trainers.run.state import TrainState, load_train_state, save_train_state


def _adam_after_steps(steps: int) -> tuple[torch.nn.Module, torch.optim.Adam]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Conv2d(4, 2, 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        optimizer.zero_grad()
        model(torch.randn(2, 3, 8, 8)).pow(2).mean().backward()
        optimizer.step()
    return model, optimizer


def test_state_round_trip_continues_adam_exactly(tmp_path: Path) -> None:
    model, optimizer = _adam_after_steps(3)
    info = {"config": {"lr": 0.01}, "magnitudes": {"style": 0.125}, "note": "x"}
    path = save_train_state(
        tmp_path / "run.state.safetensors", TrainState(3, model.state_dict(), optimizer.state_dict(), info)
    )
    loaded = load_train_state(path)
    assert loaded.step == 3 and loaded.info == info
    assert loaded.optimizer["param_groups"][0]["lr"] == 0.01
    twin = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Conv2d(4, 2, 1))
    twin.load_state_dict(loaded.net)
    twin_optimizer = torch.optim.Adam(twin.parameters(), lr=1.0)  # lr comes back from the file
    twin_optimizer.load_state_dict(loaded.optimizer)
    batch = torch.randn(2, 3, 8, 8)
    for net, opt in ((model, optimizer), (twin, twin_optimizer)):
        opt.zero_grad()
        net(batch).pow(2).mean().backward()
        opt.step()
    for a, b in zip(model.parameters(), twin.parameters(), strict=True):
        assert torch.equal(a, b)
    assert float(twin_optimizer.state_dict()["state"][0]["step"]) == 4


def test_state_loader_refuses_other_files(tmp_path: Path) -> None:
    model_file = save_style_model(tmp_path / "style.safetensors", TransformerNet())
    with pytest.raises(CheckpointError, match="not a DepthStyle training-state file"):
        load_train_state(model_file)


def _records(count: int) -> list[dict]:
    log = LossLog()
    for i in range(count):
        step = (i + 1) * 10
        losses = {"content": 1.0 / (1 + i), "style": 5.0 * math.exp(-i / 3), "depth": 2.0, "tv": 0.0}
        losses["total"] = sum(losses.values())
        log.add(step, losses, seconds=step * 0.5, steps_per_second=2.0)
    return log.records


def test_loss_log_json_csv_and_resume_truncation(tmp_path: Path) -> None:
    log = LossLog(_records(6))
    log.write_json(tmp_path / "run.log.json", {"style_sha256": "abc"})
    log.write_csv(tmp_path / "run.log.csv")
    data = json.loads((tmp_path / "run.log.json").read_text())
    assert data["info"] == {"style_sha256": "abc"}
    assert [r["step"] for r in data["records"]] == [10, 20, 30, 40, 50, 60]
    rows = list(csv.DictReader((tmp_path / "run.log.csv").open()))
    assert tuple(rows[0]) == CSV_COLUMNS and len(rows) == 6
    assert float(rows[2]["style"]) == pytest.approx(5.0 * math.exp(-2 / 3))
    reloaded = LossLog.load(tmp_path / "run.log.json")
    reloaded.truncate(35)
    assert [r["step"] for r in reloaded.records] == [10, 20, 30]
    assert reloaded.seconds == 15.0
    (tmp_path / "bad.json").write_text("{not json")
    assert LossLog.load(tmp_path / "bad.json").records == []
    assert LossLog.load(tmp_path / "missing.json").records == []


def _rows_with_colour(image: Image.Image, colour: tuple[int, int, int], columns: slice) -> np.ndarray:
    pixels = np.asarray(image)[:, columns]
    mask = np.all(np.abs(pixels.astype(int) - colour) <= 10, axis=-1)
    return np.nonzero(mask.any(axis=1))[0]


def test_loss_curve_draws_each_term_and_falls_with_the_loss(tmp_path: Path) -> None:
    records = _records(12)
    image = draw_loss_curve(records)
    assert image.size == (880, 480)
    plot = slice(80, 760)  # inside the axes, left of the legend
    for term in ("total", "content", "style", "depth"):
        assert _rows_with_colour(image, SERIES_COLOURS[term], plot).size > 0, term
    assert _rows_with_colour(image, SERIES_COLOURS["tv"], plot).size == 0  # all-zero term is not drawn
    left = _rows_with_colour(image, SERIES_COLOURS["total"], slice(76, 90))
    right = _rows_with_colour(image, SERIES_COLOURS["total"], slice(750, 766))
    assert left.mean() < right.mean() - 50  # a falling loss is drawn high on the left, low on the right
    path = write_loss_curve(records, tmp_path / "curve.png")
    with Image.open(path) as written:
        assert written.format == "PNG" and written.size == (880, 480)
    assert draw_loss_curve([]).size == (880, 480)


def test_paths_sit_beside_the_model(tmp_path: Path) -> None:
    paths = TrainPaths.for_model(tmp_path / "styles" / "starry")
    assert paths.model == tmp_path / "styles" / "starry.safetensors"
    assert paths.state.name == "starry.state.safetensors"
    assert {p.name for p in (paths.log_json, paths.log_csv, paths.loss_curve, paths.preview)} == {
        "starry.log.json",
        "starry.log.csv",
        "starry.loss.png",
        "starry.preview.png",
    }
    assert TrainPaths.for_model(tmp_path / "a.safetensors").model.name == "a.safetensors"
    with pytest.raises(ValueError, match="training-state file"):
        TrainPaths.for_model(tmp_path / "a.state.safetensors")


def test_config_defaults_are_the_papers_and_invalid_values_fail() -> None:
    config = TrainConfig()
    assert (config.lr, config.batch_size, config.image_size, config.iterations) == (1e-3, 4, 256, 40_000)
    weights = config.loss_weights()
    assert (weights.content, weights.style, weights.depth, weights.mode) == (1.0, 5.0, 5.0, "normalized")
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    tanh = TrainConfig(net_config=TransformerNetConfig(output="tanh"))
    assert TrainConfig.from_dict(tanh.to_dict()).net_config.output == "tanh"
    for bad in (
        {"depth_resolution": 250},
        {"lr": 0},
        {"batch_size": 0},
        {"weight_mode": "auto"},
        {"depth_loss": "l1"},
        {"depth_weight": -1.0},
        {"precision": "fp16"},
        {"image_size": 8},
    ):
        with pytest.raises(ValueError):
            TrainConfig(**bad)


def test_config_differences_ignore_run_length_and_cadence() -> None:
    base = TrainConfig()
    assert base.differences(TrainConfig(iterations=50_000, checkpoint_every=10, log_every=7)) == []
    changed = base.differences(TrainConfig(lr=2e-3, depth_weight=0.0))
    assert changed == ["lr: 0.001 -> 0.002", "depth_weight: 5.0 -> 0.0"]
