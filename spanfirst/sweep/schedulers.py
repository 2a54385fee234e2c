"""The early-stopping scheduler a space file chooses (``scheduler.type``) and the sweep's
trial-epoch budget (``search.max_trial_epochs``).

- ``asha``: asynchronous successive halving (Ray's ``ASHAScheduler``), one bracket.
- ``hyperband``: asynchronous Hyperband, i.e. ASHA with every Hyperband bracket (bracket ``s``
  starts pruning at ``grace_period * reduction_factor**s``; the last one never prunes), trials
  spread over the brackets. This is what Optuna's ``HyperbandPruner`` does. Ray's synchronous
  ``HyperBandScheduler`` is not used: it PAUSEs trials at each rung and resumes them from a
  checkpoint, and a sweep trial (a whole Ray Train run) restarts from scratch when resumed.
- ``asha`` with ``promotion: true``: promotion-based ASHA (:class:`PromotionASHA`), the algorithm
  of the ASHA paper: a trial pauses at each rung until it ranks in the rung's top 1/rf, then
  resumes from its checkpoint; meanwhile its slot starts a new trial.
- ``none``: FIFO, every trial runs to ``max_epochs``.

Every scheduler remembers the trials it stopped, so their final status names it
(:data:`spanfirst.sweep.summary.STOP_STATUS`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection
from typing import Any

from ray.tune.experiment import Trial
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler
from ray.tune.search import ConcurrencyLimiter, Searcher
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


class PromotionASHA(FIFOScheduler):
    """Promotion-based ASHA (Li et al., "A System for Massively Parallel Hyperparameter Tuning",
    2020, Algorithm 2): rungs at ``grace_period * reduction_factor**k`` epochs below ``max_t``. A
    trial that reaches a rung goes on only if it ranks in the top ``1/reduction_factor`` of the
    results recorded there so far (and was not promoted from it before); otherwise it PAUSEs,
    freeing its slot for a new trial, and resumes from its checkpoint once later results rank it
    so. A free slot goes to a promotable paused trial first (highest rung first), then to a new
    trial. Once all ``num_samples`` trials have started and none runs, the rungs' results are
    final: the trials still paused end there (not promoted), so the sweep ends.

    Ray's ``ASHAScheduler`` is the stopping variant: it decides at the rung, at once, and never
    stops the first trial to reach a rung (nothing to compare with), so on a small cluster the
    first trials of a sweep train to ``max_t`` whatever they score. Trials left paused when the
    sweep ends were not promoted: ``stopped`` names them, as the stopping variant's stopped ones.
    """

    def __init__(self, time_attr: str, max_t: int, grace_period: int, reduction_factor: float,
                 num_samples: int) -> None:
        super().__init__()
        self.time_attr, self.max_t, self.rf, self.num_samples = time_attr, max_t, reduction_factor, num_samples
        self.rungs: list[float] = []
        r = float(grace_period)
        while r < max_t:
            self.rungs.append(r)
            r *= reduction_factor
        self.recorded: dict[float, dict[str, float]] = {r: {} for r in self.rungs}
        self.promoted: dict[float, set[str]] = {r: set() for r in self.rungs}
        self.paused: dict[str, float] = {}  # trial id -> the rung it waits at
        self.resumes: dict[str, float] = {}  # trial id -> the rung it was last promoted from, after a pause
        self._metric, self._sign = None, 1.0

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        if metric:
            self._metric = metric
        if mode:
            self._sign = 1.0 if mode == "max" else -1.0
        return True

    @property
    def stopped(self) -> set[str]:
        return set(self.paused)

    def promotable(self, rung: float, trial_id: str) -> bool:
        scores = self.recorded[rung]
        top = sorted(scores, key=scores.__getitem__, reverse=True)[: int(len(scores) / self.rf + 1e-9)]
        return trial_id in top and trial_id not in self.promoted[rung]

    def on_trial_result(self, tune_controller, trial: Trial, result: dict[str, Any]) -> str:  # noqa: ANN001
        if self.time_attr not in result or self._metric not in result:
            return self.CONTINUE
        epoch, tid = float(result[self.time_attr]), trial.trial_id
        reached = [r for r in self.rungs if epoch >= r and tid not in self.recorded[r]]
        if not reached:
            return self.CONTINUE
        for r in reached:  # a trial restarted past a rung records its score there too
            self.recorded[r][tid] = self._sign * float(result[self._metric])
        rung = reached[-1]
        if self.promotable(rung, tid):
            self.promoted[rung].add(tid)
            return self.CONTINUE
        self.paused[tid] = rung
        return self.PAUSE

    def choose_trial_to_run(self, tune_controller) -> Trial | None:  # noqa: ANN001
        trials = tune_controller.get_trials()
        waiting = [t for t in trials if t.status == Trial.PAUSED and t.trial_id in self.paused]
        for rung in reversed(self.rungs):
            at = sorted((t for t in waiting if self.paused[t.trial_id] == rung),
                        key=lambda t: self.recorded[rung][t.trial_id], reverse=True)
            for t in at:
                if self.promotable(rung, t.trial_id):
                    return self._promote(t)
        for t in trials:
            if t.status == Trial.PENDING:
                return t
        if waiting and len(trials) >= self.num_samples and not any(t.status == Trial.RUNNING for t in trials):
            # nothing runs and no new trial will come: the rungs' results are final, and the
            # trials still waiting are not in their top 1/rf; they end (not promoted)
            for t in waiting:
                tune_controller.stop_trial(t)
        return None

    def _promote(self, trial: Trial) -> Trial:
        rung = self.paused.pop(trial.trial_id)
        self.promoted[rung].add(trial.trial_id)
        self.resumes[trial.trial_id] = rung
        return trial

    def debug_string(self) -> str:
        return f"Promotion-based ASHA: rungs {self.rungs}, {len(self.paused)} trial(s) paused"


class PausedAwareLimiter(ConcurrencyLimiter):
    """Tune's ``ConcurrencyLimiter`` for a scheduler that pauses trials: a paused trial holds no
    slot, so it does not count against ``max_concurrent``; and the searcher learns its rung score
    when it pauses (as a completed trial: a model-based searcher treats a running one as unknown or
    bad), after which its later results are not passed on (Optuna cannot report to a told trial)."""

    def __init__(self, searcher: Searcher, max_concurrent: int, paused: Callable[[], Collection[str]]) -> None:
        super().__init__(searcher, max_concurrent=max_concurrent)
        self.paused = paused
        self.told: set[str] = set()

    def suggest(self, trial_id: str) -> dict | None:
        waiting = self.paused()
        if sum(t not in waiting for t in self.live_trials) >= self.max_concurrent:
            return None
        suggestion = self.searcher.suggest(trial_id)
        if suggestion not in (None, Searcher.FINISHED):
            self.live_trials.add(trial_id)
            self.num_unfinished_live_trials += 1
        return suggestion

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if trial_id in self.told:
            return
        self.searcher.on_trial_result(trial_id, result)
        if trial_id in self.paused():
            self.searcher.on_trial_complete(trial_id, result=result)
            self.told.add(trial_id)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if trial_id in self.told:
            self.live_trials.discard(trial_id)
            return
        super().on_trial_complete(trial_id, result=result, error=error)


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
    if sch.promotion:
        return PromotionASHA(EPOCH, sch.max_epochs, sch.grace_period, sch.reduction_factor,
                             space.spec.search.num_samples)
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
