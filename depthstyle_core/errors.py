"""Errors a user can act on. Each message says what was wrong and what to do."""


class DepthStyleError(Exception):
    """Base class of every error DepthStyle raises on purpose."""


class SettingsError(DepthStyleError, ValueError):
    """A setting is out of range, unknown or contradicts another: the message names it and what it takes."""


class DeviceError(DepthStyleError, RuntimeError):
    """The device asked for does not exist or is not available on this machine."""


class OutputError(DepthStyleError, OSError):
    """A result cannot be written where it was asked for: the place is a file, or cannot be created."""


class ModelNotAvailableError(DepthStyleError, FileNotFoundError):
    """A model file is neither on disk nor in the Hub cache and cannot be downloaded."""


class HubAccessError(DepthStyleError):
    """The Hub answered, but refused: unknown repository, revision or file, or a gated repository."""


class CheckpointError(DepthStyleError, ValueError):
    """A file exists but is not a usable checkpoint: corrupt, truncated, pickled, or the wrong model."""


class InputImageError(DepthStyleError, ValueError):
    """An input image or image folder cannot be used."""


class TrainingError(DepthStyleError, RuntimeError):
    """Training had to stop (for example a NaN loss). The last good checkpoint is kept."""


class OperationCancelled(DepthStyleError):
    """The caller asked to stop (``should_stop()`` returned True) before the work was done."""


class OptimizationError(DepthStyleError, RuntimeError):
    """A per-image style optimisation had to stop: its loss became NaN or infinite."""


class OptimizationStopped(OperationCancelled):
    """``should_stop()`` ended a per-image optimisation early.

    ``partial`` holds the picture as far as it got, finished like a full result (output size,
    strength, preserve_color), so a caller can still save it; ``step`` of ``total`` steps were done.
    """

    def __init__(self, message: str, partial: object, step: int, total: int) -> None:
        super().__init__(message)
        self.partial = partial
        self.step = step
        self.total = total


class MaskError(DepthStyleError, ValueError):
    """A mask or mask setting cannot be used: wrong shape, a count that does not fit the batch, a bad band."""


class DistributedTrainingError(TrainingError):
    """A training process lost contact with the others (one died, hung or was stopped)."""


class DatasetError(DepthStyleError, RuntimeError):
    """A dataset stylisation cannot start or go on: the output folder overlaps the photos or was made with
    other settings, or an output file cannot be written."""
