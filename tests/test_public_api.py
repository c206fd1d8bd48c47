"""The public Python API: ``import depthstyle`` is light, and its attributes are the library's own."""

from __future__ import annotations

import subprocess
import sys

import pytest

import depthstyle
from depthstyle.depthstyle_core import depth, images, style_model, stylize
from depthstyle.depthstyle_core.any_style import model_file
from depthstyle.depthstyle_core.any_style import stylize as any_stylize
from depthstyle.depthstyle_core.models import vgg
from depthstyle.depthstyle_core.video import hold, warp_error
from depthstyle.trainers import (
    AnyTrainConfig,
    OptimizeConfig,
    TrainConfig,
    optimize_style,
    train_any_style,
    train_style,
)
from depthstyle.trainers.datasets import DatasetConfig, stylize_dataset

PUBLIC = {
    "estimate_depth": depth.estimate_depth,
    "load_depth_model": depth.load_depth_model,
    "load_image": images.load_image,
    "save_image": images.save_image,
    "load_vgg16": vgg.load_vgg16,
    "load_style_model": style_model.load_style_model,
    "stylize": stylize.stylize,
    "load_any_style_model": model_file.load_any_style_model,
    "stylize_any": any_stylize.stylize_any,
    "hold_still": hold.hold_still,
    "clip_warping_errors": warp_error.clip_warping_errors,
    "TrainConfig": TrainConfig,
    "train_style": train_style,
    "AnyTrainConfig": AnyTrainConfig,
    "train_any_style": train_any_style,
    "OptimizeConfig": OptimizeConfig,
    "optimize_style": optimize_style,
    "DatasetConfig": DatasetConfig,
    "stylize_dataset": stylize_dataset,
}


def test_importing_the_package_does_not_import_torch():
    code = "import sys, depthstyle; print(sorted(m for m in ('torch', 'numpy', 'PIL') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_every_public_name_is_the_library_object():
    for name, expected in PUBLIC.items():
        assert getattr(depthstyle, name) is expected
    assert set(PUBLIC) <= set(depthstyle.__all__) and set(PUBLIC) <= set(dir(depthstyle))


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="has no attribute 'stylise'"):
        depthstyle.stylise  # noqa: B018
