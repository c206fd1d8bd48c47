"""A one-line console progress bar on stderr, and Ctrl+C turned into a polite stop request."""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager


class ConsoleProgress:
    """``on_progress(done, total, preview)`` that redraws one stderr line: a bar, the step, the speed
    and the time left, both measured over the steps of this call only."""

    WIDTH = 30

    def __init__(self, label: str = "") -> None:
        self.label = label
        self.started = time.perf_counter()

    def __call__(self, done: int, total: int, preview: object = None) -> None:
        seconds = max(time.perf_counter() - self.started, 1e-9)
        rate = done / seconds
        left = (total - done) / rate if rate > 0 else 0.0
        filled = int(self.WIDTH * done / max(total, 1))
        bar = "#" * filled + "." * (self.WIDTH - filled)
        line = f"\r{self.label}[{bar}] {done}/{total} {rate:.2f} it/s, {left / 60:.1f} min left"
        print(line, end="", file=sys.stderr, flush=True)

    @staticmethod
    def end_line() -> None:
        """Finish the progress line so that the next message starts on its own line."""
        print(file=sys.stderr, flush=True)


class StopOnInterrupt:
    """``should_stop()`` that turns the first Ctrl+C into a stop request; a second Ctrl+C interrupts
    at once, as usual. Install it with :meth:`installed` around the work."""

    def __init__(self) -> None:
        self.requested = False

    def __call__(self) -> bool:
        return self.requested

    @contextmanager
    def installed(self) -> Iterator[StopOnInterrupt]:
        previous = signal.getsignal(signal.SIGINT)

        def on_interrupt(signum: int, frame: object) -> None:
            self.requested = True
            signal.signal(signal.SIGINT, previous)  # a second Ctrl+C is not caught

        signal.signal(signal.SIGINT, on_interrupt)
        try:
            yield self
        finally:
            signal.signal(signal.SIGINT, previous)
