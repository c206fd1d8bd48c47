"""Training loops. They depend on depthstyle_core and never on ComfyUI.

``train_style`` trains a feed-forward style network with the depth loss (see :mod:`.feedforward`);
``train_any_style`` trains the any-painting network with it (see :mod:`.any_train`);
``optimize_style`` stylises images with any painting by optimising their pixels (see :mod:`.optimize`);
``stylize_dataset`` stylises whole folders of photos on one process or many (see :mod:`.datasets`).
"""

from .any_config import AnyTrainConfig
from .any_train import train_any_style
from .config import TrainConfig
from .data import IMAGE_SUFFIXES, ContentSource
from .feedforward import train_style
from .loop import TrainResult
from .optimize import optimize_style
from .optimize_config import OptimizeConfig
from .paths import TrainPaths

__all__ = [
    "IMAGE_SUFFIXES",
    "AnyTrainConfig",
    "ContentSource",
    "OptimizeConfig",
    "TrainConfig",
    "TrainPaths",
    "TrainResult",
    "optimize_style",
    "train_any_style",
    "train_style",
]
