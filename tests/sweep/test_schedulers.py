"""scheduler.type (asha / hyperband / none) and the trial-epoch budget (search.max_trial_epochs).

The budget tests are real Ray Tune runs whose trainable reports a fake, improving dev score
(no model training), so they are cheap; what they check is Tune's accounting, not timing.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from ray.tune.schedulers import AsyncHyperBandScheduler, FIFOScheduler

from spanfirst.config import ConfigError
from spanfirst.sweep.schedulers import TrialEpochBudget, build_scheduler, epoch_budget, hyperband_brackets
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


def tune_run(tmp_path: Path, scheduler, stopper, num_samples: int, max_epochs: int):  # noqa: ANN001
    from ray import tune

    tuner = tune.Tuner(
        tune.with_resources(fake_training, {"cpu": 1}),
        param_space={"quality": tune.uniform(0.2, 1.0), "max_epochs": max_epochs},
        tune_config=tune.TuneConfig(metric="dev_score", mode="max", scheduler=scheduler, num_samples=num_samples,
                                    max_concurrent_trials=2),
        run_config=tune.RunConfig(storage_path=str(tmp_path / "tune"), stop=stopper, verbose=0),
    )
    grid = tuner.fit()
    frames = [r.metrics_dataframe for r in grid]
    epochs = [0 if f is None else len(f) for f in frames]  # a trial stopped before its first report has none
    for f, n in zip(frames, epochs):  # each trial's epochs are recorded 1..k, none twice or skipped
        if n:
            assert list(f["training_iteration"]) == list(range(1, n + 1))
    # what the runner's summary reads through the public Result API: every trial's id, also of a
    # trial stopped before its first report, and the sampled config of every trial that reported
    ids = [r.metrics["trial_id"] for r in grid]
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
    grid, epochs = tune_run(tmp_path, build_scheduler(space), stopper, num_samples=20, max_epochs=4)
    assert sum(epochs) == 10, epochs
    assert stopper.fired and stopper.used == 10
    assert len(grid) <= 20 and sum(e > 0 for e in epochs) < 20  # the sweep ended before its samples ran out
    if kind == "none":  # no early stops: only the (at most 2) trials running when it fired end short
        assert sum(0 < e < 4 for e in epochs) <= 2, epochs


def test_budget_larger_than_the_sweep_changes_nothing(tmp_path, ray_local):
    stopper = TrialEpochBudget(100)
    _, epochs = tune_run(tmp_path, FIFOScheduler(), stopper, num_samples=3, max_epochs=3)
    assert epochs == [3, 3, 3] and stopper.used == 9 and not stopper.fired
