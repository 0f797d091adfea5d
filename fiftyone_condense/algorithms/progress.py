"""Progress reporting that works in a terminal, a notebook and a FiftyOne operator.

Algorithms take an optional ``progress`` callable ``(fraction, message)``; this module builds
one that drives a console bar and, when given, an operator's ``ctx.set_progress``.
"""

from __future__ import annotations

import sys
import time
from typing import Callable, Optional

from tqdm.auto import tqdm

ProgressFn = Callable[[float, str], None]


def silent(fraction: float, message: str) -> None:
    """A progress callback that reports nothing."""


class Progress:
    """Reports stages of a long job; each stage owns a slice [start, end) of the whole."""

    def __init__(self, callback: Optional[ProgressFn] = None, console: Optional[bool] = None,
                 span: tuple[float, float] = (0.0, 1.0)):
        self.callback = callback
        # a terminal bar only when nobody else shows the progress (an operator passes a callback)
        self.console = (sys.stderr.isatty() and callback is None) if console is None else console
        self.span = span
        self._last = 0.0

    def sub(self, start: float, end: float) -> "Progress":
        """A reporter whose whole 0..1 is the slice [start, end) of this one."""
        low, high = self.span
        return Progress(self.callback, self.console, (low + start * (high - low), low + end * (high - low)))

    def stage(self, name: str, start: float, end: float) -> ProgressFn:
        """A callback for one stage, mapping its own 0..1 onto [start, end) of the job."""
        low, high = self.span
        start, end = low + start * (high - low), low + end * (high - low)
        bar = tqdm(total=1000, desc=name, leave=False, disable=not self.console, unit="‰")
        quarters = [0]  # in a log (no terminal) print a line at each quarter instead of a bar

        def report(fraction: float, message: str = "") -> None:
            fraction = min(max(fraction, 0.0), 1.0)
            if not self.console and self.callback is None and int(fraction * 4) > quarters[0]:
                quarters[0] = int(fraction * 4)
                print(f"  {name}: {100 * quarters[0] // 4}% {message}", file=sys.stderr, flush=True)
            bar.n = int(fraction * 1000)
            if message:
                bar.set_postfix_str(message, refresh=False)
            bar.refresh()
            if fraction >= 1.0:
                bar.close()
            now = time.monotonic()
            if self.callback is not None and (now - self._last > 0.5 or fraction >= 1.0):
                self._last = now
                self.callback(start + fraction * (end - start), f"{name}: {message}" if message else name)

        return report


def chunks(total: int, size: int):
    """(start, stop) pairs covering range(total) in steps of ``size``."""
    for start in range(0, total, size):
        yield start, min(start + size, total)
