"""The settings of one dataset stylisation, their checks, and which of them define its output."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ...depthstyle_core.errors import SettingsError
from ..data import IMAGE_SUFFIXES

FORMATS = {"jpg": "JPEG", "png": "PNG", "webp": "WEBP"}
"""Output formats (``--format``) and Pillow's names for them."""
PRECISIONS = ("fp32", "fp16", "bf16")
AUTO_BATCH = {"cpu": 1, "cuda": 32}
"""Photos per network pass when ``batch_size`` is 0: on the CPU a batch is no faster than one photo at a
time (4 photos of 500x375 in one pass took 1.2x four single passes on 2 cores); on a GPU it keeps the
device busy."""
WORK_SETTINGS = ("workers", "batch_size", "extensions")
"""Settings that change how the work is done or which photos are found, never what an output looks like:
a rerun may change them."""


@dataclass(frozen=True)
class DatasetConfig:
    """How to stylise a folder of photos; see :func:`.job.stylize_dataset`.

    ``content_size``: the photo's shorter side in pixels before painting (0 keeps its size); ``crop``: then
    cut the centre square of ``content_size``. ``style_size``: the painting's longer side (0 keeps its
    size). ``styles_per_image`` paintings, different ones, are drawn for every photo from ``seed`` and the
    photo's path. ``strength`` and ``preserve_color`` as in ``stylize_any``; ``depth_preserve`` > 0 keeps
    that much of the photo where it is near (needs a depth model). ``quality`` applies to jpg and webp (PNG
    is lossless). ``workers`` threads decode and encode; ``batch_size`` 0 picks :data:`AUTO_BATCH`.
    """

    styles_per_image: int = 1
    strength: float = 1.0
    depth_preserve: float = 0.0
    content_size: int = 0
    style_size: int = 512
    crop: bool = False
    preserve_color: bool = False
    seed: int = 0
    format: str = "jpg"
    quality: int = 90
    extensions: tuple[str, ...] = IMAGE_SUFFIXES
    workers: int = 4
    batch_size: int = 0
    precision: str = "fp32"

    def __post_init__(self) -> None:
        problems = []
        if self.styles_per_image < 1:
            problems.append(f"styles_per_image must be 1 or more, got {self.styles_per_image}")
        for name in ("strength", "depth_preserve"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                problems.append(f"{name} must be a number from 0 to 1, got {value}")
        for name in ("content_size", "style_size", "batch_size"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must be 0 or more, got {getattr(self, name)}")
        if self.crop and self.content_size == 0:
            problems.append("crop needs a content_size: the side of the square to cut")
        if self.format not in FORMATS:
            problems.append(f"format must be one of {', '.join(FORMATS)}, got {self.format!r}")
        if not 1 <= self.quality <= 100:
            problems.append(f"quality must be from 1 to 100, got {self.quality}")
        if self.workers < 1:
            problems.append(f"workers must be 1 or more, got {self.workers}")
        if self.precision not in PRECISIONS:
            problems.append(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if not self.extensions:
            problems.append("extensions must name at least one file type, e.g. jpg")
        if problems:
            raise SettingsError("; ".join(problems))
        object.__setattr__(self, "extensions", normalized_extensions(self.extensions))

    @property
    def suffix(self) -> str:
        """The output files' suffix, e.g. ``.jpg``."""
        return "." + self.format

    def batch_for(self, device_type: str) -> int:
        """Photos per network pass on a device of this type."""
        return self.batch_size or AUTO_BATCH.get(device_type, AUTO_BATCH["cuda"])

    def output_settings(self) -> dict[str, object]:
        """The settings that decide what the output files hold: a rerun into the same folder must keep
        them."""
        return {k: v for k, v in asdict(self).items() if k not in WORK_SETTINGS}


def normalized_extensions(extensions: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """``("JPG", ".png")`` -> ``(".jpg", ".png")``: lower case, with the dot, each once, in order."""
    found: list[str] = []
    for extension in extensions:
        text = extension.strip().lower()
        text = text if text.startswith(".") else "." + text
        if len(text) < 2:
            raise SettingsError(f"extension {extension!r} is empty: give e.g. jpg or .png")
        if text not in found:
            found.append(text)
    return tuple(found)
