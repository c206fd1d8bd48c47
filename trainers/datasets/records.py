"""The files that describe a stylised dataset beside its images: ``manifest.csv`` (one row per finished
image), ``skipped.csv`` (the files the last run could not read) and ``stylize-dataset.json`` (the settings
the folder was made with).

The manifest is the record of what is finished: a row is appended (and flushed) only after its image
has been renamed into place, so after a crash it holds finished images only; a line cut short by the
crash is dropped when the next run opens it. Each run that ends rewrites it sorted by photo and ``k``
(atomically), so a folder made in one go and one made over several interrupted runs end identical.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping
from dataclasses import astuple, dataclass, fields
from pathlib import Path
from typing import Any

from ...depthstyle_core.atomic_write import write_bytes_atomic
from ...depthstyle_core.errors import InputImageError

MANIFEST = "manifest.csv"
SKIPPED = "skipped.csv"
SETTINGS = "stylize-dataset.json"
SETTINGS_FORMAT = "depthstyle-dataset"


@dataclass(frozen=True)
class ManifestRow:
    """One finished image: ``photo`` (relative to the photo folder) painted with ``painting`` (relative
    to the painting folder, or the style model's name) as its ``k``-th, written to ``output`` (relative
    to the output folder), ``width`` x ``height`` pixels."""

    photo: str
    painting: str
    k: int
    strength: float
    output: str
    width: int
    height: int


@dataclass(frozen=True)
class SkippedRow:
    """A file that could not be read: ``kind`` is ``photo`` or ``painting``, ``file`` its path relative
    to its folder, ``reason`` the decoder's message."""

    kind: str
    file: str
    reason: str


MANIFEST_COLUMNS = tuple(f.name for f in fields(ManifestRow))
SKIPPED_COLUMNS = tuple(f.name for f in fields(SkippedRow))


def _csv_lines(rows: Iterable[tuple]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


def _cut_partial_line(path: Path) -> None:
    """Drop a last line that a crash left without its end (its image is then done again)."""
    with open(path, "rb+") as handle:
        data = handle.read()
        if data and not data.endswith(b"\n"):
            handle.truncate(data.rfind(b"\n") + 1)


def read_manifest(folder: Path) -> dict[str, ManifestRow]:
    """The finished images of ``folder``'s manifest, by output path (empty when there is none)."""
    path = folder / MANIFEST
    if not path.is_file():
        return {}
    rows: dict[str, ManifestRow] = {}
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = tuple(next(reader, ()))
        if header != MANIFEST_COLUMNS:
            raise InputImageError(
                f"{path} is not a manifest of depthstyle stylize-dataset (its columns are "
                f"{', '.join(header)}): give another output folder"
            )
        for line, values in enumerate(reader, start=2):
            if len(values) != len(MANIFEST_COLUMNS):
                raise InputImageError(
                    f"line {line} of {path} is damaged ({values}): delete that line, and its image is "
                    "made again by the next run"
                )
            photo, painting, k, strength, output, width, height = values
            row = ManifestRow(photo, painting, int(k), float(strength), output, int(width), int(height))
            rows[output] = row
    return rows


class ManifestWriter:
    """Appends finished images to the manifest and unreadable files to ``skipped.csv`` as they come
    (rank 0 only). Opening it cuts a line a crash left unfinished and starts ``skipped.csv`` afresh."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        manifest = folder / MANIFEST
        if manifest.is_file():
            _cut_partial_line(manifest)
        new = not manifest.is_file() or manifest.stat().st_size == 0
        self._manifest = open(manifest, "a", newline="", encoding="utf-8")  # noqa: SIM115 (closed in close)
        if new:
            self._manifest.write(_csv_lines([MANIFEST_COLUMNS]))
        self._skipped = open(folder / SKIPPED, "w", newline="", encoding="utf-8")  # noqa: SIM115
        self._skipped.write(_csv_lines([SKIPPED_COLUMNS]))
        self.flush()

    def add(self, finished: Iterable[ManifestRow], skipped: Iterable[SkippedRow] = ()) -> None:
        """Append rows and flush them to the operating system (a killed process loses none)."""
        self._manifest.write(_csv_lines(astuple(row) for row in finished))
        self._skipped.write(_csv_lines(astuple(row) for row in skipped))
        self.flush()

    def flush(self) -> None:
        self._manifest.flush()
        self._skipped.flush()

    def close(self) -> None:
        self._manifest.close()
        self._skipped.close()

    def finish(self, skipped: Iterable[SkippedRow]) -> list[ManifestRow]:
        """Close, then rewrite both files sorted (atomically); the manifest's rows are returned."""
        self.close()
        rows = sorted(read_manifest(self.folder).values(), key=lambda row: (row.photo, row.k, row.output))
        manifest = _csv_lines([MANIFEST_COLUMNS, *(astuple(row) for row in rows)])
        write_bytes_atomic(self.folder / MANIFEST, manifest.encode())
        ordered = sorted(set(skipped), key=lambda row: (row.kind, row.file))
        text = _csv_lines([SKIPPED_COLUMNS, *(astuple(row) for row in ordered)])
        write_bytes_atomic(self.folder / SKIPPED, text.encode())
        return rows


def settings_conflict(folder: Path, settings: Mapping[str, Any]) -> str | None:
    """Why ``folder`` cannot be continued with ``settings`` (None when it can, or is new)."""
    path = folder / SETTINGS
    if not path.is_file():
        return None
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return f"{path} cannot be read ({exc}); delete it only if the folder holds no images of another run"
    if not isinstance(saved, dict) or saved.get("format") != SETTINGS_FORMAT:
        return f"{path} is not a depthstyle stylize-dataset record"
    before = saved.get("settings", {})
    differing = [
        f"{name} {before.get(name)!r} then, {value!r} now"
        for name, value in settings.items()
        if before.get(name) != value
    ]
    if not differing:
        return None
    return (
        f"{folder} was stylised with other settings ({'; '.join(differing)}). Run the same command to "
        "finish it, or give another output folder for these settings"
    )


def write_settings(folder: Path, settings: Mapping[str, Any]) -> None:
    """Record the settings the folder is made with (atomically)."""
    record = {"format": SETTINGS_FORMAT, "version": 1, "settings": dict(settings)}
    write_bytes_atomic(folder / SETTINGS, (json.dumps(record, indent=1, sort_keys=True) + "\n").encode())
