"""Stylising whole datasets (Stylized-ImageNet style): many photos, many paintings, one process or a
torchrun job, resumable, each image exactly once. See :func:`.job.stylize_dataset`."""

from .config import DatasetConfig
from .job import DatasetResult, stylize_dataset

__all__ = ["DatasetConfig", "DatasetResult", "stylize_dataset"]
