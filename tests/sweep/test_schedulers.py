"""scheduler.type (asha, stopping or promotion-based / hyperband / none) and the trial-epoch budget
(search.max_trial_epochs).

The budget tests are real Ray Tune runs whose trainable reports a fake, improving dev score
(no model training), so they are cheap; what they check is Tune's accounting, not timing.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from ray.tune.schedulers import AsyncHyperBandScheduler, FIFOScheduler
from ray.tune.search import Searcher

from spanfirst.config import ConfigError
from spanfirst.sweep.runner import TrialIds, searcher, summarize
from spanfirst.sweep.schedulers import (PausedAwareLimiter, PromotionASHA, TrialEpochBudget, build_scheduler,
                                        epoch_budget, hyperband_brackets)
from spanfirst.sweep.space import load_space
from spanfirst.sweep.summary import STOP_STATUS, STOPPED_BY_EPOCH_BUDGET, classify

BASE = "task: re\nname: sched-test\ndata: {train: train.csv, dev: dev.csv}\nmodel: {backbone: tiny}\n"


def space_file(tmp_path: Path, scheduler: str, search: str = "{}") -> Path:
    (tmp_path / "base.yaml").write_text(BASE, encoding="utf-8")
    path = tmp_path / "space.yaml"
    path.write_text(f"base: base.yaml\nscheduler: {scheduler}\nsearch: {search}\n"
                    "space:\n  re.focal_gamma: {choice: [0.0, 1.0]}\n", encoding="utf-8")
    return path


def test_default_is_asha_without_budget(tmp_path):
    space = load_space(space_file(tmp_path, "{max_epochs: 4}"))
    assert space.spec.scheduler.type == "asha" and space.spec.search.max_trial_epochs is None
    assert epoch_budget(space) is None


@pytest.mark.parametrize(("scheduler", "search", "key"), [
    ("{type: median, max_epochs: 4}", "{}", "scheduler.type"),
    ("{type: asha}", "{max_trial_epochs: 0}", "search.max_trial_epochs"),
    ("{type: none}", "{max_trial_epochs: many}", "search.max_trial_epochs"),
])
def test_bad_scheduler_or_budget_names_file_and_key(tmp_path, scheduler, search, key):
    path = space_file(tmp_path, scheduler, search)
    with pytest.raises(ConfigError) as err:
        load_space(path)
    assert str(path) in str(err.value) and f"'{key}'" in str(err.value)


@pytest.mark.parametrize(("max_epochs", "grace", "eta", "brackets"), [
    (8, 1, 2, 4), (4, 1, 2, 3), (9, 1, 3, 3), (6, 2, 2, 2), (3, 3, 2, 1)])
def test_hyperband_bracket_count(tmp_path, max_epochs, grace, eta, brackets):
    space = load_space(space_file(tmp_path, f"{{type: hyperband, max_epochs: {max_epochs}, "
                                            f"grace_period: {grace}, reduction_factor: {eta}}}"))
    assert hyperband_brackets(space.spec.scheduler) == brackets


def _rungs(scheduler: AsyncHyperBandScheduler) -> list[list[int]]:
    return [sorted(int(milestone) for milestone, _ in b._rungs) for b in scheduler._brackets]


def test_scheduler_built_for_each_type(tmp_path):
    spec = "{{type: {}, max_epochs: 8, grace_period: 1, reduction_factor: 2}}"
    asha = build_scheduler(load_space(space_file(tmp_path, spec.format("asha"))))
    assert isinstance(asha, AsyncHyperBandScheduler) and asha.stopped == set()
    assert _rungs(asha) == [[1, 2, 4, 8]]
    hyperband = build_scheduler(load_space(space_file(tmp_path, spec.format("hyperband"))))
    assert isinstance(hyperband, AsyncHyperBandScheduler)
    # bracket s starts pruning at grace * eta**s; the last one only has max_t (where a trial ends anyway)
    assert _rungs(hyperband) == [[1, 2, 4, 8], [2, 4, 8], [4, 8], [8]]
    fifo = build_scheduler(load_space(space_file(tmp_path, spec.format("none"))))
    assert isinstance(fifo, FIFOScheduler) and not isinstance(fifo, AsyncHyperBandScheduler)
    assert fifo.stopped == set()


def test_statuses_name_the_scheduler_and_the_epoch_budget():
    rows = [{"epoch": 1, "dev_score": 0.1}, {"epoch": 2, "dev_score": 0.2}]
    kw = {"scheduler_status": STOP_STATUS["hyperband"], "budget_status": STOPPED_BY_EPOCH_BUDGET}
    assert classify(rows, False, 4, 0, True, False, **kw) == "stopped_by_hyperband"
    assert classify(rows, False, 4, 0, False, True, **kw) == STOPPED_BY_EPOCH_BUDGET
    assert classify(rows, False, 4, 0, True, True, **kw) == "stopped_by_hyperband"  # the scheduler's own stop
    assert classify(rows, False, 2, 0, False, True, **kw) == "completed"
    assert classify([], False, 4, 0, False, True, **kw) == STOPPED_BY_EPOCH_BUDGET


def test_budget_counts_each_epoch_once():
    stopper = TrialEpochBudget(3)
    # a trial's final 'done' repeats its last result; a restarted trial may report an epoch again
    for trial, it in [("a", 1), ("b", 1), ("a", 2), ("a", 2)]:
        assert stopper(trial, {"epoch": it, "training_iteration": 1}) is False
    assert stopper.used == 3 and stopper.fired and stopper.stop_all()


def fake_training(config):
    """Reports a dev score that improves with every epoch, like a trial's per-epoch report."""
    import time

    from ray import tune

    for epoch in range(1, config["max_epochs"] + 1):
        time.sleep(0.05)
        tune.report({"epoch": epoch, "dev_score": config["quality"] * (1 - 0.5**epoch)})


@pytest.fixture(scope="module")
def ray_local():
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR", configure_logging=False)
    yield
    ray.shutdown()


def tune_run(tmp_path: Path, space, stopper, num_samples: int, max_epochs: int):  # noqa: ANN001
    from ray import tune

    started = TrialIds()
    tuner = tune.Tuner(
        tune.with_resources(fake_training, {"cpu": 1}),
        param_space={"quality": tune.uniform(0.2, 1.0), "max_epochs": max_epochs},
        tune_config=tune.TuneConfig(metric="dev_score", mode="max", scheduler=build_scheduler(space),
                                    num_samples=num_samples, max_concurrent_trials=2),
        run_config=tune.RunConfig(storage_path=str(tmp_path / "tune"), stop=stopper, verbose=0, callbacks=[started]),
    )
    grid = tuner.fit()
    frames = [r.metrics_dataframe for r in grid]
    epochs = [0 if f is None else len(f) for f in frames]  # a trial stopped before its first report has none
    for f, n in zip(frames, epochs):  # each trial's epochs are recorded 1..k, none twice or skipped
        if n:
            assert list(f["training_iteration"]) == list(range(1, n + 1))
    # what the runner's summary reads: every trial's id, also of a trial stopped before its first
    # report, and the sampled config of every trial that reported
    ids = [t.trial_id for t in summarize(grid, space, False, set(), ids=started.by_path)]
    assert len(set(ids)) == len(grid) and all(ids)
    assert all("quality" in r.config for r, n in zip(grid, epochs) if n)
    return grid, epochs


@pytest.mark.parametrize("kind", ["none", "asha", "hyperband"])
def test_budget_ends_the_sweep_at_exactly_the_budget(tmp_path, ray_local, kind):
    """Tune asks stop_all after every result and then drops the results still queued, so the
    recorded trial-epochs are exactly the budget; the work of the trials still running at that
    moment (at most one epoch each, here 2 at a time) is done but not recorded."""
    space = load_space(space_file(tmp_path, f"{{type: {kind}, max_epochs: 4, grace_period: 1}}",
                                  "{max_trial_epochs: 10, num_samples: 20}"))
    stopper = epoch_budget(space)
    grid, epochs = tune_run(tmp_path, space, stopper, num_samples=20, max_epochs=4)
    assert sum(epochs) == 10, epochs
    assert stopper.fired and stopper.used == 10
    assert len(grid) <= 20 and sum(e > 0 for e in epochs) < 20  # the sweep ended before its samples ran out
    if kind == "none":  # no early stops: only the (at most 2) trials running when it fired end short
        assert sum(0 < e < 4 for e in epochs) <= 2, epochs


def test_budget_larger_than_the_sweep_changes_nothing(tmp_path, ray_local):
    stopper = TrialEpochBudget(100)
    space = load_space(space_file(tmp_path, "{type: none, max_epochs: 3}"))
    _, epochs = tune_run(tmp_path, space, stopper, num_samples=3, max_epochs=3)
    assert epochs == [3, 3, 3] and stopper.used == 9 and not stopper.fired


def test_summary_takes_ids_from_the_started_trials_not_from_a_stale_default_result(tmp_path):
    """Ray asks a reused actor for a new trial's default result before resetting it, so a trial
    cut before its first report can carry the previous trial's id in ``Result.metrics``; the
    summary takes the id its trial started with, and a trial that never started keeps its own."""
    import pandas as pd
    from ray.tune import Result

    space = load_space(space_file(tmp_path, "{type: none, max_epochs: 2}", "{max_trial_epochs: 3}"))
    reported = Result({"trial_id": "a", "epoch": 2, "dev_score": 0.5}, None, None, str(tmp_path / "a"),
                      metrics_dataframe=pd.DataFrame({"epoch": [1, 2], "dev_score": [0.4, 0.5]}))
    cut = Result({"trial_id": "a"}, None, None, str(tmp_path / "b"))  # the reused actor's previous trial
    pending = Result({"trial_id": "c"}, None, None, str(tmp_path / "c"))
    started = {str(tmp_path / "a"): "a", str(tmp_path / "b"): "b"}
    trials = summarize([reported, cut, pending], space, False, set(), epochs_spent=True, ids=started)
    assert [(t.trial_id, t.epochs) for t in trials] == [("a", 2), ("b", 0), ("c", 0)]
    assert trials[0].status == "completed" and trials[1].status == STOPPED_BY_EPOCH_BUDGET


# ---- promotion-based ASHA (scheduler.promotion: true) ----

class _Trial:
    """What PromotionASHA reads of a Tune trial: its id and status."""

    def __init__(self, trial_id: str, status: str = "RUNNING") -> None:
        self.trial_id, self.status = trial_id, status


class _Controller:
    """What PromotionASHA uses of Tune's controller: the trials, and ending a paused one."""

    def __init__(self, trials: list[_Trial]) -> None:
        self.trials = trials

    def get_trials(self) -> list[_Trial]:
        return self.trials

    def stop_trial(self, trial: _Trial) -> None:
        trial.status = "TERMINATED"


def _promotion(tmp_path: Path, num_samples: int = 20, extra: str = "") -> PromotionASHA:
    space = load_space(space_file(tmp_path, f"{{type: asha, promotion: true, max_epochs: 6, grace_period: 1{extra}}}",
                                  f"{{num_samples: {num_samples}}}"))
    sched = build_scheduler(space)
    sched.set_search_properties("dev_score", "max")
    return sched


def _report(sched: PromotionASHA, trial: _Trial, epoch: int, score: float) -> str:
    decision = sched.on_trial_result(_Controller([trial]), trial, {"epoch": epoch, "dev_score": score})
    if decision == sched.PAUSE:
        trial.status = "PAUSED"
    return decision


def test_promotion_rungs_and_first_trial_waits(tmp_path):
    sched = _promotion(tmp_path)
    assert sched.rungs == [1, 2, 4]  # below max_epochs 6, where a trial ends by itself
    assert _promotion(tmp_path, extra=", reduction_factor: 3").rungs == [1, 3]
    a = _Trial("a")
    # nothing to compare with: Ray's stopping ASHA lets the first trial at a rung go on, this one waits
    assert _report(sched, a, 1, 0.3) == sched.PAUSE and sched.stopped == {"a"}
    assert sched.on_trial_result(_Controller([a]), a, {"epoch": 1}) == sched.CONTINUE  # no metric: no decision


def test_promotion_of_a_paused_trial_before_new_ones(tmp_path):
    sched = _promotion(tmp_path)
    a, b, new = _Trial("a"), _Trial("b"), _Trial("new", "PENDING")
    ctl = _Controller([a, b, new])
    _report(sched, a, 1, 0.5)
    assert sched.choose_trial_to_run(ctl) is new  # a is not (yet) in the top half of one result
    assert _report(sched, b, 1, 0.2) == sched.PAUSE  # worse than a: waits too
    assert sched.choose_trial_to_run(ctl) is a  # a is now the top 1 of 2: promoted before the new trial
    assert sched.resumes == {"a": 1} and sched.stopped == {"b"}
    a.status = "PENDING"  # what Tune does with the trial the scheduler chose
    assert _report(sched, a, 2, 0.6) == sched.PAUSE  # alone at rung 2
    c = _Trial("c")
    assert _report(sched, c, 1, 0.9) == sched.CONTINUE  # the top 1 of 3 at rung 1: goes on at once
    assert _report(sched, c, 2, 0.7) == sched.CONTINUE  # top 1 of 2 at rung 2
    # a ranks second of 2 at rung 2 and b third of 3 at rung 1: neither may go on; the new trial runs
    assert sched.choose_trial_to_run(ctl) is new


def test_promotion_ends_the_losers_when_no_new_trial_comes(tmp_path):
    sched = _promotion(tmp_path, num_samples=3)
    a, b, c = trials = [_Trial(t) for t in "abc"]
    for t, score in zip(trials, (0.4, 0.3, 0.2)):
        _report(sched, t, 1, score)
    c.status = "RUNNING"  # say c's pause is still being processed
    ctl = _Controller(trials)
    assert sched.choose_trial_to_run(ctl) is a  # promotable: top 1 of 3
    a.status = "PENDING"
    assert sched.choose_trial_to_run(ctl) is a  # idempotent: Tune has not started it yet
    a.status = "RUNNING"
    _report(sched, a, 2, 0.5)  # alone at rung 2: pauses
    assert sched.choose_trial_to_run(ctl) is None and c.status == "RUNNING"  # c may still change the ranks
    c.status = "PAUSED"
    # all 3 samples started, nothing runs: no rung can change, the waiting trials lose
    assert sched.choose_trial_to_run(ctl) is None
    assert [t.status for t in trials] == ["TERMINATED"] * 3 and sched.stopped == {"a", "b", "c"}


def test_promotion_with_mode_min(tmp_path):
    sched = _promotion(tmp_path)
    sched.set_search_properties("loss", "min")
    a, b = _Trial("a"), _Trial("b")
    sched.on_trial_result(_Controller([a]), a, {"epoch": 1, "loss": 0.2})
    assert sched.on_trial_result(_Controller([b]), b, {"epoch": 1, "loss": 0.9}) == sched.PAUSE
    assert sched.promotable(1, "a") and not sched.promotable(1, "b")


def test_promotion_needs_asha(tmp_path):
    path = space_file(tmp_path, "{type: hyperband, promotion: true, max_epochs: 4}")
    with pytest.raises(ConfigError) as err:
        load_space(path)
    assert str(path) in str(err.value) and "promotion" in str(err.value)


class _Recorder(Searcher):
    """The searcher behind the limiter: suggests fixed configs and records what it is told."""

    def __init__(self) -> None:
        super().__init__(metric="dev_score", mode="max")
        self.results: list[tuple[str, int]] = []
        self.completed: list[str] = []

    def suggest(self, trial_id: str) -> dict:
        return {"x": 1}

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        self.results.append((trial_id, result["epoch"]))

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        self.completed.append(trial_id)


def test_paused_trials_free_their_slot_and_teach_the_searcher():
    paused: set[str] = set()
    inner = _Recorder()
    limiter = PausedAwareLimiter(inner, 2, lambda: paused)
    assert limiter.suggest("a") and limiter.suggest("b") and limiter.suggest("c") is None  # 2 running
    paused.add("a")
    limiter.on_trial_result("a", {"epoch": 1})  # the result it paused on: the searcher learns it as final
    assert inner.results == [("a", 1)] and inner.completed == ["a"]
    assert limiter.suggest("c")  # a paused trial holds no slot
    paused.discard("a")  # promoted: it runs again and counts again
    assert limiter.suggest("d") is None
    limiter.on_trial_result("a", {"epoch": 2})  # already told: not passed on (Optuna cannot take it)
    limiter.on_trial_complete("a", {"epoch": 2})
    assert inner.results == [("a", 1)] and inner.completed == ["a"]
    limiter.on_trial_complete("b", {"epoch": 1})
    assert inner.completed == ["a", "b"] and limiter.suggest("d")


def resumable_training(config):
    """Like ``fake_training``, but a trial started again continues after the epoch it last
    reported (its progress is kept in a file, as a real trial keeps a checkpoint)."""
    import time

    from ray import tune

    state = Path(config["state_dir"]) / tune.get_context().get_trial_id()
    first = int(state.read_text()) + 1 if state.exists() else 1
    for epoch in range(first, config["max_epochs"] + 1):
        time.sleep(0.05)
        state.write_text(str(epoch))
        tune.report({"epoch": epoch, "dev_score": config["quality"] * (1 - 0.5**epoch)})


def test_promotion_sweep_pauses_and_resumes_trials(tmp_path, ray_local):
    """A real Tune run: trials pause at rungs, some are promoted and resume where they paused
    (epochs 1..k, none twice), the searcher (Optuna TPE behind the limiter) keeps suggesting while
    trials wait, and the trial-epoch budget still ends the sweep exactly."""
    from ray import tune

    space = load_space(space_file(tmp_path, "{type: asha, promotion: true, max_epochs: 4, grace_period: 1}",
                                  "{algorithm: optuna, max_trial_epochs: 14, num_samples: 30}"))
    sched, stopper = build_scheduler(space), epoch_budget(space)
    search = searcher(space, 2, sched)
    assert isinstance(search, PausedAwareLimiter)
    (tmp_path / "state").mkdir()
    started = TrialIds()
    tuner = tune.Tuner(
        tune.with_resources(resumable_training, {"cpu": 1}),
        param_space={"quality": tune.uniform(0.2, 1.0), "max_epochs": 4, "state_dir": str(tmp_path / "state")},
        tune_config=tune.TuneConfig(metric="dev_score", mode="max", scheduler=sched, search_alg=search,
                                    num_samples=30, reuse_actors=True),
        run_config=tune.RunConfig(storage_path=str(tmp_path / "tune"), stop=stopper, verbose=0, callbacks=[started]),
    )
    grid = tuner.fit()
    # a trial cut before its first report has none (and on a reused actor Tune may give it the
    # previous trial's id: the summary's ids, as the sweep reads them)
    ids = [t.trial_id for t in summarize(grid, space, False, set(), ids=started.by_path)]
    epochs = {i: list(r.metrics_dataframe["epoch"]) if r.metrics_dataframe is not None and len(r.metrics_dataframe)
              else [] for i, r in zip(ids, grid)}
    assert len(epochs) == len(grid)
    assert sum(len(e) for e in epochs.values()) == 14 and stopper.used == 14
    assert all(e == list(range(1, len(e) + 1)) for e in epochs.values()), epochs
    resumed = [t for t in sched.resumes if len(epochs[t]) > sched.resumes[t]]
    assert resumed, (sched.resumes, epochs)  # a paused trial was promoted and trained on from its rung
    # promotions are not revoked (a trial promoted as the top 1 of 2 stays promoted when better ones
    # come), so a rung may promote more than 1/rf of its final results, but never all of them
    assert 0 < len(sched.promoted[1.0]) < len(sched.recorded[1.0]), (sched.recorded, sched.promoted)
    assert search.told and len(epochs) > 4  # paused trials were told to TPE; new ones kept coming


@pytest.mark.timeout(240)
def test_promotion_sweep_without_budget_ends_with_its_samples(tmp_path, ray_local):
    """4 samples, no budget: rung 1 (epoch 1) promotes its top 2 of 4, rung 2 its top 1 of 2,
    which trains to max_epochs; the others end where they paused, and the sweep ends."""
    from ray import tune

    space = load_space(space_file(tmp_path, "{type: asha, promotion: true, max_epochs: 4, grace_period: 1}",
                                  "{algorithm: random, num_samples: 4}"))
    sched = build_scheduler(space)
    (tmp_path / "state").mkdir()
    tuner = tune.Tuner(
        tune.with_resources(resumable_training, {"cpu": 1}),
        param_space={"quality": tune.uniform(0.2, 1.0), "max_epochs": 4, "state_dir": str(tmp_path / "state")},
        tune_config=tune.TuneConfig(metric="dev_score", mode="max", scheduler=sched, num_samples=4,
                                    search_alg=searcher(space, 2, sched), reuse_actors=True),
        run_config=tune.RunConfig(storage_path=str(tmp_path / "tune"), verbose=0),
    )
    grid = tuner.fit()
    lengths = sorted(0 if r.metrics_dataframe is None else len(r.metrics_dataframe) for r in grid)
    assert lengths == [1, 1, 2, 4], lengths
    assert len(sched.stopped) == 3 and all(r.error is None for r in grid)
