"""Finished trials -> status, score, a CSV table and a plot of the dev metric against time.

A trial's status comes from its own history (and the scheduler's record when this driver saw
the decision), so it is the same after ``--resume`` as in the run that produced the trial:
it ran all epochs or stopped on its own patience -> completed; it errored -> failed; it ended
earlier than either -> stopped_by_asha (stopped_by_hyperband, ... : the scheduler's name), or
stopped_by_time_budget / stopped_by_epoch_budget when the sweep's budget ran out.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

COMPLETED, STOPPED_BY_ASHA, FAILED = "completed", "stopped_by_asha", "failed"
STOPPED_BY_BUDGET, NOT_STARTED = "stopped_by_time_budget", "not_started"
STOPPED_BY_EPOCH_BUDGET = "stopped_by_epoch_budget"  # search.max_trial_epochs
# A trial its scheduler stopped, by scheduler.type ("none" stops none; a trial that ended early
# with no record of why, e.g. after --resume, is still named by the sweep's scheduler).
STOP_STATUS = {"asha": STOPPED_BY_ASHA, "hyperband": "stopped_by_hyperband", "none": "stopped_early"}
SCHEDULER_STOPS = tuple(STOP_STATUS.values())


@dataclass
class TrialSummary:
    trial_id: str
    status: str
    params: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    metric: str = "dev_score"
    error: str | None = None
    startup: float | None = None  # seconds its slot waited for its first step (:func:`set_startups`)

    @property
    def epochs(self) -> int:
        return int(self.history[-1]["epoch"]) if self.history else 0

    @property
    def best(self) -> dict[str, Any] | None:
        """The best epoch's row on the sweep metric (a trial's score is its best epoch)."""
        rows = [r for r in self.history if _finite(r.get(self.metric))]
        return max(rows, key=lambda r: float(r[self.metric])) if rows else None

    @property
    def score(self) -> float:
        best = self.best
        return float(best[self.metric]) if best else -math.inf

    @property
    def checkpoint(self) -> str | None:
        """The trial's best model: the loop saves a model only when dev_score improved, so the
        last reported checkpoint that holds one (``saved_model``; the others are resume points)."""
        paths = [r["checkpoint_path"] for r in self.history
                 if isinstance(r.get("checkpoint_path"), str) and r.get("saved_model", 1)]
        return paths[-1] if paths else None

    @property
    def overhead(self) -> float | None:
        value = self.history[0].get("trial_overhead_seconds") if self.history else None
        return float(value) if _finite(value) else None

    @property
    def elapsed(self) -> float | None:
        value = self.history[-1].get("trial_elapsed_seconds") if self.history else None
        return float(value) if _finite(value) else None


def set_startups(trials: list[TrialSummary], fit_started: float) -> None:
    """Each trial's start-up: what its slot spent before the trial's first optimizer step.

    Trials run in processes that Tune reuses one after another. A trial's slot became free when
    the process's previous stretch of training made its last report, or, for the first stretch of
    a process, when the sweep's ``fit`` started (or the process was born, if later). A stretch is a
    trial's run from one first step on; under promotion-based ASHA a trial that pauses at a rung and
    is promoted later trains a second stretch, maybe in another process, and the next trial of that
    process waits for it. The span up to the first step holds everything a trial costs beyond
    training: the scheduler's decision, resetting or starting the process, imports, data, model
    build. Trials of an earlier run of the sweep (``--resume``) keep None.
    """
    by_pid: dict[Any, list[tuple[float, Any, Any, TrialSummary | None]]] = {}
    for t in trials:
        for n, (pid, first_step, born, last) in enumerate(_stretches(t.history)):
            if first_step >= fit_started:
                by_pid.setdefault(pid, []).append((first_step, born, last, t if n == 0 else None))
    for runs in by_pid.values():
        runs.sort(key=lambda run: run[0])
        free = None
        for first_step, born, last, t in runs:
            if free is None:
                free = max(fit_started, float(born)) if _finite(born) else fit_started
            if t is not None:
                t.startup = max(0.0, first_step - free)
            free = float(last) if _finite(last) else None


def _stretches(history: list[dict[str, Any]]) -> list[tuple[Any, float, Any, Any]]:
    """(process id, first step, process born, last report) of each stretch of a trial's training: a
    new one starts at every report with a first step of its own."""
    out: list[list[Any]] = []
    for row in history:
        first = row.get("first_step_at")
        if _finite(first) and "trial_pid" in row and (not out or float(first) != out[-1][1]):
            out.append([row["trial_pid"], float(first), row.get("trial_process_started_at"), row.get("reported_at")])
        elif out and "reported_at" in row:
            out[-1][3] = row["reported_at"]
    return [tuple(s) for s in out]


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))


def classify(history: list[dict[str, Any]], error: bool, max_epochs: int, patience: int,
             stopped_by_scheduler: bool, budget_exhausted: bool, scheduler_status: str = STOPPED_BY_ASHA,
             budget_status: str = STOPPED_BY_BUDGET) -> str:
    """The final status of one trial (see the module docstring)."""
    if error:
        return FAILED
    if not history:
        return budget_status if budget_exhausted else NOT_STARTED
    last = int(history[-1]["epoch"])
    if last >= max_epochs:
        return COMPLETED
    if patience:
        best_epoch = max(history, key=lambda r: float(r.get("dev_score", -math.inf)))["epoch"]
        if last - int(best_epoch) >= patience:
            return COMPLETED  # the loop's own early stopping
    if budget_exhausted and not stopped_by_scheduler:
        return budget_status
    return scheduler_status


def history_rows(frame: Any) -> list[dict[str, Any]]:
    """A Tune result DataFrame -> one dict per reported epoch (NaN cells dropped)."""
    if frame is None or len(frame) == 0:
        return []
    by_epoch: dict[Any, dict[str, Any]] = {}
    for rec in frame.to_dict("records"):  # a restarted trial may report an epoch again: the last counts
        row = {k: v for k, v in rec.items() if not (isinstance(v, float) and math.isnan(v))}
        by_epoch[row.get("epoch", row.get("training_iteration", 0))] = row
    return [by_epoch[k] for k in sorted(by_epoch)]


def write_table(trials: list[TrialSummary], path: Path, run_ids: dict[str, str]) -> Path:
    """One row per trial: status, best score and epoch, epochs run, timing, sampled params."""
    keys = sorted({k for t in trials for k in t.params})
    header = ["trial_id", "status", "score", "best_epoch", "epochs", "startup_s", "overhead_s", "elapsed_s",
              "train_s", "mlflow_run_id", *keys, "checkpoint"]
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        for t in sorted(trials, key=lambda t: t.score, reverse=True):
            best = t.best or {}
            train_s = sum(float(r.get("epoch_train_seconds", 0.0)) for r in t.history)
            w.writerow([t.trial_id, t.status, _fmt(t.score), best.get("epoch", ""), t.epochs, _fmt(t.startup), _fmt(t.overhead),
                        _fmt(t.elapsed), _fmt(train_s), run_ids.get(t.trial_id, ""),
                        *[t.params.get(k, "") for k in keys], t.checkpoint or ""])
    return path


def _fmt(v: float | None) -> str:
    return "" if v is None or not math.isfinite(v) else f"{v:.4f}"


def plot_progress(trials: list[TrialSummary], path: Path, metric: str) -> Path:
    """Dev metric against time since trial start, one line per trial; where the scheduler (ASHA)
    stopped a trial its line ends in a red cross, any other trial ends in a dot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for t in trials:
        pts = [(float(r["trial_elapsed_seconds"]), float(r[metric])) for r in t.history
               if _finite(r.get("trial_elapsed_seconds")) and _finite(r.get(metric))]
        if not pts:
            continue
        xs, ys = zip(*pts)
        line, = ax.plot(xs, ys, marker=".", linewidth=1, label=f"{t.trial_id.rsplit('_', 1)[-1]} ({t.status})")
        if t.status in SCHEDULER_STOPS:
            ax.plot(xs[-1], ys[-1], marker="x", color="red", markersize=10, markeredgewidth=2)
        else:
            ax.plot(xs[-1], ys[-1], marker="o", color=line.get_color(), markersize=6)
    ax.plot([], [], "x", color="red", label="stopped by the scheduler")
    ax.set_xlabel("seconds since trial start (incl. start-up)")
    ax.set_ylabel(metric)
    ax.set_title("Sweep progress per trial")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
