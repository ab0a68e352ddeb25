"""A small progress meter: a bar on a terminal, periodic lines elsewhere (logs, CI)."""

from __future__ import annotations

import sys
import time
from typing import Callable, Optional, TextIO


def format_duration(seconds: float) -> str:
    """``H:MM:SS`` for a number of seconds (``--:--`` when unknown)."""
    if seconds != seconds or seconds < 0 or seconds == float("inf"):
        return "--:--"
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class Progress:
    """Reports ``done`` out of ``total`` units with rate and ETA.

    ``update(n)`` adds ``n`` units; a report is written at most every ``interval``
    seconds (and once at ``close()``). ``scale``/``unit`` control display, e.g.
    ``scale=1e6, unit="MB"`` for bytes. ``total`` may be ``None`` when unknown.
    """

    def __init__(self, label: str, total: Optional[float], unit: str = "", scale: float = 1.0,
                 interval: float = 2.0, stream: Optional[TextIO] = None,
                 clock: Callable[[], float] = time.monotonic, initial: float = 0.0) -> None:
        self.label = label
        self.total = total
        self.unit = unit
        self.scale = scale
        self.interval = interval
        self.stream = stream if stream is not None else sys.stderr
        self.clock = clock
        self.done = initial
        self._initial = initial
        self._start = clock()
        self._last = -float("inf")
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def rate(self) -> float:
        """Units per second since the meter started (units present at start excluded)."""
        elapsed = self.clock() - self._start
        return (self.done - self._initial) / elapsed if elapsed > 0 else 0.0

    def line(self) -> str:
        rate = self.rate()
        shown = f"{self.done / self.scale:,.1f}"
        if self.total:
            frac = min(self.done / self.total, 1.0)
            eta = (self.total - self.done) / rate if rate > 0 else float("inf")
            bar = "#" * int(frac * 24)
            return (f"{self.label} [{bar:<24}] {shown}/{self.total / self.scale:,.1f} {self.unit} "
                    f"{frac:6.1%} {rate / self.scale:,.1f} {self.unit}/s ETA {format_duration(eta)}")
        return f"{self.label} {shown} {self.unit} {rate / self.scale:,.1f} {self.unit}/s"

    def update(self, amount: float) -> None:
        self.done += amount
        now = self.clock()
        if now - self._last >= self.interval:
            self._last = now
            self._write()

    def _write(self) -> None:
        if self._tty:
            self.stream.write("\r" + self.line())
        else:
            self.stream.write(self.line() + "\n")
        self.stream.flush()

    def close(self) -> None:
        self._write()
        if self._tty:
            self.stream.write("\n")
            self.stream.flush()
