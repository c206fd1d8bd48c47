"""Training loops. They depend on depthstyle_core and never on ComfyUI.

``train_style`` trains a feed-forward style network with the depth loss; see :mod:`.feedforward`.
"""

from .config import TrainConfig
from .data import IMAGE_SUFFIXES, ContentSource
from .feedforward import TrainResult, train_style
from .paths import TrainPaths

__all__ = ["IMAGE_SUFFIXES", "ContentSource", "TrainConfig", "TrainPaths", "TrainResult", "train_style"]
