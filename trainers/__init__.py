"""Training loops. They depend on depthstyle_core and never on ComfyUI.

``train_style`` trains a feed-forward style network with the depth loss (see :mod:`.feedforward`);
``optimize_style`` stylises images with any painting by optimising their pixels (see :mod:`.optimize`).
"""

from .config import TrainConfig
from .data import IMAGE_SUFFIXES, ContentSource
from .feedforward import train_style
from .loop import TrainResult
from .optimize import optimize_style
from .optimize_config import OptimizeConfig
from .paths import TrainPaths

__all__ = [
    "IMAGE_SUFFIXES",
    "ContentSource",
    "OptimizeConfig",
    "TrainConfig",
    "TrainPaths",
    "TrainResult",
    "optimize_style",
    "train_style",
]
