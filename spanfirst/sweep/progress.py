"""One line per trial that ended, printed by the sweep driver (a Tune callback).

Reasons use the words of :mod:`spanfirst.sweep.summary`: finished all epochs / early-stopped
(its own patience) -> completed; stopped by the scheduler (``scheduler.stopped``); stopped by the
epoch or time budget; error -> failed. With a budget, each line carries the sweep's ETA.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from ray.tune import Callback

from spanfirst.train.progress import fmt_duration

FINISHED, EARLY, SCHEDULER, BUDGET, ERROR = ("finished all epochs", "early-stopped", "stopped by the scheduler",
                                             "stopped by the budget", "error")


def sweep_eta(elapsed: float, fraction_used: float | None) -> float | None:
    if not fraction_used or fraction_used <= 0:
        return None
    return max(0.0, elapsed / min(fraction_used, 1.0) - elapsed)


def trial_line(trial_id: str, result: dict[str, Any], reason: str, metric: str = "dev_score",
               eta_s: float | None = None) -> str:
    epochs = int(result.get("epoch", 0) or 0)
    parts = [f"trial {trial_id}: {reason} after {epochs} epoch(s)"]
    for key in (metric, f"best_{metric}"):
        v = result.get(key)
        if isinstance(v, (int, float)) and math.isfinite(float(v)):
            parts.append(f"{key} {float(v):.4f}")
    if eta_s is not None:
        parts.append(f"sweep ETA {fmt_duration(eta_s)}")
    return ", ".join(parts)


class TrialLines(Callback):
    def __init__(self, scheduler: Any = None, stopper: Any = None, time_budget_s: float | None = None,
                 max_epochs: int | None = None, metric: str = "dev_score",
                 clock: Callable[[], float] = time.perf_counter, echo: Callable[[str], None] | None = None) -> None:
        self.scheduler, self.stopper, self.time_budget_s = scheduler, stopper, time_budget_s
        self.max_epochs, self.metric, self.clock = max_epochs, metric, clock
        self.echo = echo or (lambda line: print(line, flush=True))
        self.started = clock()
        self.resumed_from: dict[float, set[str]] = {}  # promotions already announced

    def fraction_used(self, elapsed: float) -> float | None:
        fractions = []
        if self.stopper is not None and getattr(self.stopper, "budget", 0):
            fractions.append(self.stopper.used / self.stopper.budget)
        if self.time_budget_s:
            fractions.append(elapsed / self.time_budget_s)
        return max(fractions) if fractions else None

    def reason(self, trial: Any, result: dict[str, Any], error: bool, elapsed: float) -> str:
        if error:
            return ERROR
        if trial.trial_id in getattr(self.scheduler, "stopped", ()):
            return SCHEDULER
        epochs = int(result.get("epoch", 0) or 0)
        if self.max_epochs and epochs >= self.max_epochs:
            return FINISHED
        if (self.stopper is not None and getattr(self.stopper, "fired", False)) or (
                self.time_budget_s and elapsed >= self.time_budget_s):
            return BUDGET
        return EARLY if self.max_epochs else FINISHED

    def _line(self, trial: Any, error: bool) -> None:
        elapsed = self.clock() - self.started
        result = getattr(trial, "last_result", None) or {}
        frac = self.fraction_used(elapsed)
        self.echo(trial_line(trial.trial_id, result, self.reason(trial, result, error, elapsed), self.metric,
                             sweep_eta(elapsed, frac)))

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._line(trial, error=False)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._line(trial, error=True)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict[str, Any], **info: Any) -> None:
        """Promotion-based ASHA paused the trial at a rung (it waits for promotion)."""
        rung = getattr(self.scheduler, "paused", {}).get(trial.trial_id)
        if rung is not None and float(result.get("epoch", 0) or 0) >= rung:
            line = trial_line(trial.trial_id, result, f"paused at rung {rung:g}", self.metric)
            self.echo(f"{line}; resumes from its checkpoint once it ranks in the rung's top "
                      f"1/{getattr(self.scheduler, 'rf', 2):g}")

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        resumes = getattr(self.scheduler, "resumes", {})
        if trial.trial_id in resumes and trial.trial_id not in self.resumed_from.get(resumes[trial.trial_id], ()):
            rung = resumes[trial.trial_id]
            self.resumed_from.setdefault(rung, set()).add(trial.trial_id)
            self.echo(f"trial {trial.trial_id}: promoted from the rung of {rung:g} epoch(s), "
                      "resuming from its checkpoint")

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        """A lost trial Tune starts again (trial.max_failures): it resumes from its latest checkpoint."""
        result = getattr(trial, "last_result", None) or {}
        self.echo(f"trial {trial.trial_id}: lost after {int(result.get('epoch', 0) or 0)} epoch(s), starting "
                  f"again from its latest checkpoint (failure {trial.run_metadata.num_failures} of at most "
                  f"{trial.max_failures + 1})")
