"""The console side of long runs: a one-line progress bar on stderr whose speed counts only this run,
and stop signals (Ctrl+C, a scheduler's SIGTERM) turned into a polite stop request."""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable

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


def progress_line(step: int, total: int, speed: float | None, details: str = "") -> str:
    """One console line: a bar, the step, speed (steps per second) and time left, then ``details``."""
    filled = int(BAR_WIDTH * step / max(total, 1))
    rate = f"{speed:.2f} it/s, {(total - step) / speed / 60:.1f} min left" if speed else "-- it/s"
    bar = "#" * filled + "." * (BAR_WIDTH - filled)
    return f"[{bar}] {step}/{total} {rate} {details}".rstrip()


class ConsoleProgress:
    """``on_progress(done, total, preview)`` that redraws one stderr line, prefixed by ``label``;
    ``details()`` adds text at the end (e.g. the last losses). ``enabled`` False draws nothing (the
    other processes of a distributed run)."""

    def __init__(
        self, label: str = "", details: Callable[[], str] | None = None, *, enabled: bool = True
    ) -> None:
        self.label = label
        self.details = details
        self.enabled = enabled
        self.speed = RunSpeed()

    def __call__(self, done: int, total: int, preview: object = None) -> None:
        speed = self.speed(done)
        if self.enabled:
            line = progress_line(done, total, speed, self.details() if self.details else "")
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
