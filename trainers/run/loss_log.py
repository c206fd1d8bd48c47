"""The loss log of a training run: one record per log interval, written as JSON and CSV."""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ...depthstyle_core.atomic_write import write_bytes_atomic

LOG_FORMAT = "depthstyle-loss-log/1"
TERMS = ("total", "content", "style", "depth", "tv")
CSV_COLUMNS = ("step", *TERMS, "seconds", "steps_per_second")


class LossLog:
    """Records ``{"step", "total", "content", "style", "depth", "tv", "seconds", "steps_per_second"}``
    (the loss ``terms`` of the run, :data:`TERMS` by default).

    Loss values are the weighted terms averaged over the steps since the previous record, so the
    terms add up to ``total``. ``seconds`` is the training time so far (across resumes).
    """

    def __init__(self, records: list[dict[str, float]] | None = None, terms: tuple[str, ...] = TERMS) -> None:
        self.records: list[dict[str, float]] = list(records or [])
        self.terms = terms

    def add(self, step: int, losses: Mapping[str, float], seconds: float, steps_per_second: float) -> dict:
        """Append the record of ``step`` and return it."""
        record: dict[str, float] = {"step": int(step)}
        record.update({term: float(losses.get(term, 0.0)) for term in self.terms})
        record["seconds"] = round(float(seconds), 3)
        record["steps_per_second"] = round(float(steps_per_second), 3)
        self.records.append(record)
        return record

    def truncate(self, step: int) -> None:
        """Forget records after ``step`` (a resumed run repeats them from its checkpoint)."""
        self.records = [r for r in self.records if r["step"] <= step]

    @property
    def seconds(self) -> float:
        """Training time recorded so far."""
        return float(self.records[-1]["seconds"]) if self.records else 0.0

    @classmethod
    def load(cls, path: str | os.PathLike) -> LossLog:
        """The log written by :meth:`write_json`; an empty log if the file is missing or unreadable."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return cls()
        if not isinstance(data, dict) or data.get("format") != LOG_FORMAT:
            return cls()
        return cls([r for r in data.get("records", []) if isinstance(r, dict) and "step" in r])

    def write_json(self, path: str | os.PathLike, info: Mapping[str, Any] | None = None) -> Path:
        """Write ``{"format", "info", "records"}`` atomically; ``info`` describes the run."""
        payload = {"format": LOG_FORMAT, "info": dict(info or {}), "records": self.records}
        return write_bytes_atomic(path, (json.dumps(payload, indent=1) + "\n").encode("utf-8"))

    def write_csv(self, path: str | os.PathLike) -> Path:
        """Write one row per record, columns ``step``, the terms, ``seconds`` and ``steps_per_second``
        (:data:`CSV_COLUMNS` for the default terms), atomically."""
        text = io.StringIO()
        columns = ("step", *self.terms, "seconds", "steps_per_second")
        writer = csv.DictWriter(text, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.records)
        return write_bytes_atomic(path, text.getvalue().encode("utf-8"))
