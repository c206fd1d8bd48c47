"""The console side of long runs: a one-line progress bar on stderr whose speed counts only this run,
the library's warnings on lines of their own, and stop signals (Ctrl+C, a scheduler's SIGTERM) turned
into a polite stop request."""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
import time
from collections.abc import Callable, Iterator

BAR_WIDTH = 30


class RunSpeed:
    """Steps per second of this run alone, from its first reported step on: a resumed run does not
    count the steps of the runs before it, and start-up time is left out."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self._clock = clock
        self._first: tuple[int, float] | None = None

    def __call__(self, step: int) -> float | None:
        """The rate after ``step`` has finished, or None while it cannot be known yet."""
        now = self._clock()
        if self._first is None:
            self._first = (step, now)
        first_step, first_time = self._first
        return (step - first_step) / (now - first_time) if step > first_step and now > first_time else None


def progress_line(step: int, total: int, speed: float | None, details: str = "", unit: str = "it") -> str:
    """One console line: a bar, the step, speed (``unit`` per second) and time left, then ``details``."""
    filled = int(BAR_WIDTH * step / max(total, 1))
    rate = f"{speed:.2f} {unit}/s, {(total - step) / speed / 60:.1f} min left" if speed else f"-- {unit}/s"
    bar = "#" * filled + "." * (BAR_WIDTH - filled)
    return f"[{bar}] {step}/{total} {rate} {details}".rstrip()


class ConsoleProgress:
    """``on_progress(done, total, preview)`` that redraws one stderr line, prefixed by ``label``;
    ``details()`` adds text at the end (e.g. the last losses); ``unit`` names what is counted. ``enabled``
    False draws nothing (the other processes of a distributed run)."""

    def __init__(
        self,
        label: str = "",
        details: Callable[[], str] | None = None,
        *,
        enabled: bool = True,
        unit: str = "it",
    ) -> None:
        self.label = label
        self.details = details
        self.enabled = enabled
        self.unit = unit
        self.speed = RunSpeed()

    def __call__(self, done: int, total: int, preview: object = None) -> None:
        speed = self.speed(done)
        if self.enabled:
            line = progress_line(done, total, speed, self.details() if self.details else "", self.unit)
            print(f"\r{self.label}{line}", end="", file=sys.stderr, flush=True)

    def end_line(self) -> None:
        """Finish the progress line so that the next message starts on its own line."""
        if self.enabled:
            print(file=sys.stderr, flush=True)


class StopOnSignals:
    """``should_stop()`` for the library: the first of ``signals`` asks the work to stop at its next
    check (it then saves what it has); a second one interrupts at once (KeyboardInterrupt). Use it as a
    context manager around the work; the previous handlers come back afterwards."""

    def __init__(self, signals: tuple[int, ...] = (signal.SIGINT,)) -> None:
        self.signals = signals
        self.received: int | None = None
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, frame: object) -> None:
        if self.received is not None:
            raise KeyboardInterrupt
        self.received = signum

    def __call__(self) -> bool:
        return self.received is not None

    def __enter__(self) -> StopOnSignals:
        self._previous = {number: signal.signal(number, self._handle) for number in self.signals}
        return self

    def __exit__(self, *exc_info: object) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)


@contextlib.contextmanager
def warnings_below_the_bar() -> Iterator[None]:
    """Print the library's warnings (e.g. unreadable photos) on a line of their own, not at the end
    of the progress bar."""
    logger = logging.getLogger("depthstyle")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("\n%(message)s"))
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
