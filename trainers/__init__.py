"""Training loops. They depend on depthstyle_core and never on ComfyUI.

``train_style`` trains a feed-forward style network with the depth loss (see :mod:`.fast`);
``train_any_style`` trains the any-painting network with it (see :mod:`.any_style`);
``optimize_style`` stylises images with any painting by optimising their pixels (see :mod:`.optimize`);
``stylize_dataset`` stylises whole folders of photos on one process or many (see :mod:`.datasets`).
"""

from .any_style.config import AnyTrainConfig
from .any_style.job import train_any_style
from .data import IMAGE_SUFFIXES, ContentSource
from .fast.config import TrainConfig
from .fast.job import train_style
from .optimize.config import OptimizeConfig
from .optimize.job import optimize_style
from .run.loop import TrainResult
from .run.paths import TrainPaths

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
