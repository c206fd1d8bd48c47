"""Training loops. They depend on depthstyle_core and never on ComfyUI.

``train_style`` trains a feed-forward style network with the depth loss (see :mod:`.feedforward`);
``optimize_style`` stylises images with any painting by optimising their pixels (see :mod:`.optimize`);
``stylize_dataset`` stylises whole folders of photos on one process or many (see :mod:`.datasets`).
"""

from .config import TrainConfig
from .data import IMAGE_SUFFIXES, ContentSource
from .feedforward import TrainResult, train_style
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
