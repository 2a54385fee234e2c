"""What a person sees while training runs: rank 0's epoch and step lines (``train.progress``).

On a terminal a step line at most every ``tty_every_s`` seconds; elsewhere (log files, CI, Ray
worker output) at most one per ``log_fraction`` of the epoch, and none for an epoch shorter than
``min_epoch_s``. Every epoch ends in one line. The clock is a parameter so tests need no sleeping.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO


def fmt_duration(seconds: float) -> str:
    s = max(0, round(seconds))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s" if m else f"{s}s"


class Progress:
    def __init__(self, epochs: int, steps_per_epoch: int, rank: int = 0, enabled: bool = True,
                 clock: Callable[[], float] = time.perf_counter, out: TextIO | None = None,
                 tty: bool | None = None, tty_every_s: float = 5.0, log_fraction: float = 0.1,
                 min_epoch_s: float = 5.0) -> None:
        self.epochs, self.steps = epochs, max(steps_per_epoch, 1)
        self.on = enabled and rank == 0
        self.clock, self.out = clock, out if out is not None else sys.stdout
        self.tty = tty if tty is not None else bool(getattr(self.out, "isatty", lambda: False)())
        self.tty_every_s, self.log_fraction, self.min_epoch_s = tty_every_s, log_fraction, min_epoch_s
        self.epoch_times: list[float] = []

    def _print(self, line: str) -> None:
        # Written to the stream, not print(): Ray Train's workers patch print() into a logger that
        # also echoes to a wrapped stdout, which showed every line twice.
        self.out.write(line + "\n")
        self.out.flush()

    def start_epoch(self, epoch: int) -> None:
        self.epoch, self.t0 = epoch, self.clock()
        self.last_line, self.tenths, self.examples = self.t0, 1, 0

    def step(self, done: int, examples: int) -> None:
        """``done`` steps of this epoch finished, ``examples`` more examples trained (this rank)."""
        self.examples += examples
        if not self.on or done >= self.steps:
            return
        now = self.clock()
        elapsed = now - self.t0
        if self.tty:
            if now - self.last_line < self.tty_every_s:
                return
        else:
            if elapsed < self.min_epoch_s or done < self.tenths * self.log_fraction * self.steps - 1e-9:
                return
            while self.tenths * self.log_fraction * self.steps <= done + 1e-9:
                self.tenths += 1
        self.last_line = now
        rate = self.examples / elapsed if elapsed > 0 else 0.0
        eta = elapsed / done * (self.steps - done)
        self._print(f"epoch {self.epoch}/{self.epochs} step {done}/{self.steps} "
                    f"({100 * done / self.steps:.0f}%) {rate:.1f} ex/s, epoch ETA {fmt_duration(eta)}")

    def end_epoch(self, train_loss: float, dev_score: float) -> None:
        seconds = self.clock() - self.t0
        self.epoch_times.append(seconds)
        if not self.on:
            return
        left = self.epochs - self.epoch
        eta = sum(self.epoch_times) / len(self.epoch_times) * left
        self._print(f"epoch {self.epoch}/{self.epochs} done: train_loss {train_loss:.4f} dev_score {dev_score:.4f} "
                    f"({fmt_duration(seconds)}), ETA {fmt_duration(eta)} for {left} more epoch(s)")
