"""The early-stopping scheduler a space file chooses (``scheduler.type``) and the sweep's
trial-epoch budget (``search.max_trial_epochs``).

- ``asha``: asynchronous successive halving (Ray's ``ASHAScheduler``), one bracket.
- ``hyperband``: asynchronous Hyperband, i.e. ASHA with every Hyperband bracket (bracket ``s``
  starts pruning at ``grace_period * reduction_factor**s``; the last one never prunes), trials
  spread over the brackets. This is what Optuna's ``HyperbandPruner`` does. Ray's synchronous
  ``HyperBandScheduler`` is not used: it PAUSEs trials at each rung and resumes them from a
  checkpoint, and a sweep trial (a whole Ray Train run) restarts from scratch when resumed.
- ``none``: FIFO, every trial runs to ``max_epochs``.

Every scheduler remembers the trials it stopped, so their final status names it
(:data:`spanfirst.sweep.summary.STOP_STATUS`).
"""

from __future__ import annotations

import math
from typing import Any

from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler
from ray.tune.stopper import Stopper

from spanfirst.sweep.space import SchedulerSpec, SweepSpace


class RecordingASHA(ASHAScheduler):
    """ASHA (one bracket) or asynchronous Hyperband (several) that remembers which trials it stopped."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.stopped: set[str] = set()

    def on_trial_result(self, tune_controller, trial, result):  # noqa: ANN001
        decision = super().on_trial_result(tune_controller, trial, result)
        if decision == self.STOP:
            self.stopped.add(trial.trial_id)
        return decision


class RecordingFIFO(FIFOScheduler):
    """No early stopping; ``stopped`` stays empty (the same interface as :class:`RecordingASHA`)."""

    def __init__(self) -> None:
        super().__init__()
        self.stopped: set[str] = set()


def hyperband_brackets(sch: SchedulerSpec) -> int:
    """Hyperband's bracket count s_max + 1, s_max = floor(log_eta(max_t / grace_period))."""
    ratio = sch.max_epochs / sch.grace_period
    return int(math.floor(math.log(ratio) / math.log(sch.reduction_factor) + 1e-9)) + 1


def epochs_per_trial(sch: SchedulerSpec) -> float:
    """The epochs a trial is expected to train under ``sch``, laid out as Ray's asynchronous
    successive halving lays out its brackets: bracket s has rungs grace * rf**(k + s) below
    max_epochs; every trial of a bracket trains to its first rung and a 1/rf share of each rung's
    trials goes on to the next (the last rung goes on to max_epochs). Hyperband's trials join
    bracket s with weight e**(its rung count), as Ray assigns them."""
    if sch.type == "none":
        return float(sch.max_epochs)
    per_bracket = []
    for s in range(hyperband_brackets(sch) if sch.type == "hyperband" else 1):
        count = int(math.log(sch.max_epochs / sch.grace_period) / math.log(sch.reduction_factor) - s + 1)
        rungs = [r for r in (sch.grace_period * sch.reduction_factor ** (k + s) for k in range(max(1, count)))
                 if r < sch.max_epochs] + [float(sch.max_epochs)]
        epochs, share = rungs[0], 1.0
        for lower, upper in zip(rungs, rungs[1:]):
            share /= sch.reduction_factor
            epochs += share * (upper - lower)
        per_bracket.append((len(rungs), epochs))
    most = max(n for n, _ in per_bracket)
    weights = [math.exp(n - most) for n, _ in per_bracket]
    return sum(w * e for w, (_, e) in zip(weights, per_bracket)) / sum(weights)


def build_scheduler(space: SweepSpace) -> TrialScheduler:
    """The scheduler of ``scheduler.type``, by the reported ``epoch`` (not Tune's training_iteration,
    which starts again at 1 when a lost trial restarts from its checkpoint at a later epoch)."""
    sch = space.spec.scheduler
    if sch.type == "none":
        return RecordingFIFO()
    brackets = hyperband_brackets(sch) if sch.type == "hyperband" else 1
    # stop_last_trials=False: a trial reaching max_epochs ends on its own and closes its MLflow run.
    return RecordingASHA(time_attr=EPOCH, max_t=sch.max_epochs, grace_period=sch.grace_period,
                         reduction_factor=sch.reduction_factor, brackets=brackets, stop_last_trials=False)


EPOCH = "epoch"  # what the loop reports with every epoch


class TrialEpochBudget(Stopper):
    """Ends the whole sweep once the trials together have reported ``budget`` epochs.

    Tune asks ``stop_all`` after every single result it processes and then discards the
    results still queued, so the epochs Tune records add up to exactly ``budget`` (when the
    sweep would have used more). Running trials may have trained part or all of one more epoch
    each by then; that work is lost, not counted.
    """

    def __init__(self, budget: int) -> None:
        self.budget = budget
        # (trial, epoch): a trial's final 'done' repeats its last; a restarted trial may train an epoch again
        self.seen: set[tuple[str, int]] = set()

    @property
    def used(self) -> int:
        return len(self.seen)

    @property
    def fired(self) -> bool:
        return self.used >= self.budget

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        if EPOCH in result:
            self.seen.add((trial_id, int(result[EPOCH])))
        return False

    def stop_all(self) -> bool:
        return self.fired


def epoch_budget(space: SweepSpace) -> TrialEpochBudget | None:
    n = space.spec.search.max_trial_epochs
    return TrialEpochBudget(n) if n else None
