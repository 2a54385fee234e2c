"""The sweep driver: a Ray Tune ``Tuner`` (ASHA) over trials that each run the project's Ray Train job.

Data is read once here and shared with every trial through the object store; it is tokenised
and aligned once per distinct setting by the first trial that needs it and shared through the
sweep's feature cache actor (:mod:`spanfirst.train.features`). A single-worker trial trains in its
own process and reserves its worker's CPUs/GPUs; a multi-worker trial function reserves (almost)
nothing (a tiny memory request: ``{"cpu": 0}`` alone is rejected) while its Train workers reserve
them: a trial that held a CPU while its workers waited for it is how a 2-core machine deadlocks.
Concurrency is bounded by what the cluster fits. Trial processes are reused (``reuse_actors``), so
imports are paid once per process, not per trial. A sweep's MLflow runs (parent, children, final statuses, the registered best) belong to
:class:`~spanfirst.sweep.runs.SweepRuns`; the driver leaves MLflow's process-wide URIs and
environment as it found them.
"""

from __future__ import annotations

import json
import math
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from ray.tune import Callback

from spanfirst import tracking
from spanfirst.config import apply_overrides
from spanfirst.environ import restore
from spanfirst.sweep.progress import TrialLines
from spanfirst.sweep.runs import SweepRuns
from spanfirst.sweep.schedulers import (PausedAwareLimiter, PromotionASHA, build_scheduler, epoch_budget,
                                        epochs_per_trial)
from spanfirst.sweep.space import SchedulerSpec, SearchSpec, SweepSpace, load_space
from spanfirst.sweep.storage import Storage, StorageError
from spanfirst.sweep.summary import (SCHEDULER_STOPS, STOP_STATUS, STOPPED_BY_BUDGET, STOPPED_BY_EPOCH_BUDGET,
                                     TrialSummary, classify, history_rows, set_startups)
from spanfirst.train.features import cache_stats, start_cache
from spanfirst.train.ray_session import init_ray

if TYPE_CHECKING:
    from spanfirst.serving.register import Registration

TRIAL_MEMORY = 32 * 2**20  # bytes: the trial function's whole reservation
STATE_FILE = "sweep.json"  # in the Tune experiment folder: what --resume needs to find its MLflow runs
# Tune saves its experiment state (what --resume restores) at most every 10 s by default; a
# driver killed in between would rerun trials that had already finished.
TUNE_STATE_ENV, TUNE_STATE_PERIOD_S = "TUNE_GLOBAL_CHECKPOINT_S", "2"


class TrialIds(Callback):
    """Each trial's id by its results folder (``Result.path``), read off Tune's trials at the end.

    ``Result.metrics['trial_id']`` of a trial that never reported is Tune's default result, which
    Ray (2.60) asks a reused actor for before resetting it to its new trial: a trial cut by the
    budget in that moment carries the previous trial's id, and its summary would overwrite that
    trial's MLflow status. The summary reads ids from here first."""

    def __init__(self) -> None:
        self.by_path: dict[str, str] = {}

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self.by_path = {t.path: t.trial_id for t in trials if t.storage.trial_dir_name}


class SweepError(RuntimeError):
    """A sweep that cannot run as asked (resources, a missing searcher package); said in one line."""


@dataclass
class SweepOptions:
    num_samples: int | None = None
    max_concurrent: int | None = None
    gpus_per_worker: float | None = None
    workers_per_trial: int | None = None
    time_budget_s: float | None = None
    address: str | None = None
    resume: str | None = None  # an experiment folder, or "latest" for this space's newest one
    tracking_uri: str | None = None
    storage: str = "runs/sweeps"  # a local folder or a URI (s3://, gs://, any pyarrow filesystem)
    shared_storage: bool = False  # the user says a local --storage path is the same folder on every node
    runtime: str | None = None  # the registered model's runtime (default: the base config's serving.runtime)
    verbose: int = 1


@dataclass
class SweepOutcome:
    name: str
    experiment_dir: str  # a local path or a URI, like --storage
    tracking_uri: str
    parent_run_id: str
    concurrency: int
    wall_seconds: float
    trials: list[TrialSummary]
    run_ids: dict[str, str]
    best: TrialSummary | None = None
    registered: Registration | None = None  # set whenever ``best`` is
    features: dict[str, dict[str, int]] | None = None  # the feature cache's builds and hits per key
    experiment_id: str = ""


def space_updates(opts: SweepOptions) -> dict[str, Any]:
    updates: dict[str, Any] = {"search": {}, "trial": {}}
    if opts.num_samples is not None:
        updates["search"]["num_samples"] = opts.num_samples
    if opts.max_concurrent is not None:
        updates["search"]["max_concurrent"] = opts.max_concurrent
    if opts.workers_per_trial is not None:
        updates["trial"]["workers"] = opts.workers_per_trial
    if opts.gpus_per_worker is not None:
        updates["trial"]["gpus_per_worker"] = opts.gpus_per_worker
    return updates


def check_storage_reach(storage: Storage, shared: bool) -> None:
    """A local ``--storage`` folder on a multi-node cluster: Ray Train's workers on other nodes
    cannot write to it (Ray fails deep inside a trial); say so before anything starts."""
    import ray

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    if len(nodes) > 1 and storage.is_local and not shared:
        raise SweepError(
            f"--storage {storage.root} is a local folder, but the Ray cluster has {len(nodes)} nodes whose "
            "trials must all write there; use cloud storage (--storage s3://BUCKET/PREFIX, gs://..., any "
            "pyarrow filesystem URI) or a shared filesystem mounted at the same path on every node "
            "and add --shared-storage")


def concurrency(space: SweepSpace, resources: dict[str, float]) -> int:
    """Trials that fit at once: cluster CPUs (GPUs) over one trial's worker group, capped by the file."""
    t = space.spec.trial
    need_cpu = t.workers * t.cpus_per_worker
    fits = math.floor(resources.get("CPU", 0) / need_cpu + 1e-9)
    if t.gpus_per_worker > 0:
        fits = min(fits, math.floor(resources.get("GPU", 0) / (t.workers * t.gpus_per_worker) + 1e-9))
    if fits < 1:
        raise SweepError(f"one trial needs {need_cpu} CPU and {t.workers * t.gpus_per_worker} GPU; "
                           f"the cluster has {resources.get('CPU', 0)} CPU and {resources.get('GPU', 0)} GPU")
    cap = space.spec.search.max_concurrent or fits
    return max(1, min(fits, cap, space.spec.search.num_samples))


CLUSTER_MAX_FAILURES = 2  # trial.max_failures: auto on a multi-node cluster


def max_failures(space: SweepSpace, nodes: int) -> int:
    """``trial.max_failures``, with ``auto`` resolved: restarts pay off where nodes are lost
    (several nodes, spot instances); on one machine a lost process is rarer and mostly a memory
    kill that would only happen again."""
    value = space.spec.trial.max_failures
    return (CLUSTER_MAX_FAILURES if nodes > 1 else 0) if value == "auto" else int(value)


def trial_resources(space: SweepSpace) -> dict[str, float]:
    """What the trial function reserves: its worker's CPUs/GPUs when it trains in its own process
    (one worker), ~nothing when a Train worker group reserves them (several)."""
    t = space.spec.trial
    if t.workers == 1:
        return {"cpu": t.cpus_per_worker, "gpu": t.gpus_per_worker}
    return {"cpu": 0, "memory": TRIAL_MEMORY}


def startup_trials(search: SearchSpec, scheduler: SchedulerSpec) -> int:
    """TPE's random trials before it models the results: a quarter of the trials the sweep is
    expected to start (``num_samples``, or, under a trial-epoch budget, the budget over the epochs a
    trial is expected to train), between 2 and 10 (Optuna's own default). Under early stopping
    most trials end at the first rung, so a budget starts several times budget / max_epochs trials."""
    trials = search.num_samples
    if search.max_trial_epochs:
        trials = min(trials, max(1, round(search.max_trial_epochs / epochs_per_trial(scheduler))))
    return min(10, max(2, trials // 4))


def searcher(space: SweepSpace, max_concurrent: int, scheduler: Any = None) -> Any:
    """The search algorithm, seeded. Tune ignores ``max_concurrent_trials`` for the random
    generator (it only wraps ``Searcher``s), so that one carries its own bound. Under a scheduler
    that pauses trials (:class:`PromotionASHA`) the searcher comes bounded by a
    :class:`PausedAwareLimiter` (pass no ``max_concurrent_trials`` to Tune then), and random search
    is Optuna's seeded random sampler (Tune's generator would count paused trials as running)."""
    s = space.spec.search
    grid = [k for k, (kind, _) in space.dists.items() if kind == "grid"]
    pausing = isinstance(scheduler, PromotionASHA)
    if s.algorithm == "random" and not pausing:
        from ray.tune.search.basic_variant import BasicVariantGenerator

        return BasicVariantGenerator(random_state=s.seed, max_concurrent=max_concurrent,
                                     points_to_evaluate=first_points(space))
    if grid:
        raise SweepError(f"{space.path}: 'grid' ({', '.join(grid)}) needs search.algorithm: random"
                         + (" and scheduler.promotion: false" if pausing else ""))
    if pausing:
        return PausedAwareLimiter(_searcher(space, max_concurrent), max_concurrent, lambda: scheduler.paused)
    return _searcher(space, max_concurrent)


def first_trial(space: SweepSpace) -> tuple[dict[str, Any], list[str]] | None:
    """The first trial's values under ``search.start_from_base`` and the keys among them that were
    drawn: the base config's values, and for a key whose base value the space cannot draw, a value
    drawn from its distribution (seeded; Tune's Optuna and HyperOpt searchers take only whole
    points). None where it is off or no base value is inside the space."""
    base = space.base_point() if space.spec.search.start_from_base else {}
    if not base:
        return None
    rng, domains = np.random.RandomState(space.spec.search.seed), space.tune_space()
    drawn = [key for key in space.dists if key not in base]
    point = {key: base[key] if key in base else _plain(domains[key].sample(random_state=rng)) for key in space.dists}
    return point, drawn


def first_points(space: SweepSpace) -> list[dict[str, Any]] | None:
    """Tune's ``points_to_evaluate``: the first trial's values (:func:`first_trial`)."""
    first = first_trial(space)
    return [first[0]] if first else None


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value the searchers and the config take."""
    return value.item() if isinstance(value, np.generic) else value


def _searcher(space: SweepSpace, max_concurrent: int) -> Any:
    s = space.spec.search
    points = first_points(space)
    try:
        if s.algorithm in ("optuna", "random"):
            import optuna
            from ray.tune.search.optuna import OptunaSearch

            optuna.logging.set_verbosity(optuna.logging.WARNING)
            if s.algorithm == "random":
                return OptunaSearch(sampler=optuna.samplers.RandomSampler(seed=s.seed), points_to_evaluate=points)
            # Optuna counts the base config's trial among its start-up trials: keep the random ones
            startup = (s.startup_trials or startup_trials(s, space.spec.scheduler)) + (1 if points else 0)
            with warnings.catch_warnings():  # multivariate and constant_liar are flagged experimental
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                # multivariate: one joint density over all parameters (pooling x learning rate, not
                # each alone); constant_liar: a running trial counts as a bad one, so concurrent
                # trials are not sampled next to each other
                sampler = optuna.samplers.TPESampler(n_startup_trials=startup, seed=s.seed, multivariate=True,
                                                     constant_liar=max_concurrent > 1)
            return OptunaSearch(sampler=sampler, points_to_evaluate=points)
        from ray.tune.search.hyperopt import HyperOptSearch

        return HyperOptSearch(random_state_seed=s.seed, points_to_evaluate=points)
    except (ImportError, AssertionError) as err:
        raise SweepError(f"search.algorithm '{s.algorithm}' needs the '{s.algorithm}' package: {err}") from None


def find_resume_dir(storage: Storage, space: SweepSpace, resume: str) -> Storage:
    """The experiment folder to resume: ``resume`` itself (a path or URI), or this space's newest."""
    if resume != "latest":
        path = Storage.parse(resume, "--resume")
    else:
        found = storage.subdirs_with(f"{space.name}-", STATE_FILE)
        if not found:
            raise FileNotFoundError(f"no sweep of {space.path.name} to resume under {storage.root}")
        path = Storage(storage.child(found[-1]))
    if not path.exists(STATE_FILE):
        raise FileNotFoundError(f"{path.root}: not a sweep folder (no {STATE_FILE})")
    return path


def run_sweep(space_path: str | Path, opts: SweepOptions) -> SweepOutcome:
    """Run (or resume) a sweep to the end; returns what was found and registered."""
    from ray import tune

    from spanfirst.sweep.trial import run_trial
    from spanfirst.tasks import get_task

    space = load_space(space_path, space_updates(opts))
    s = space.spec
    try:
        storage = Storage.parse(opts.storage)
    except StorageError as err:
        raise SweepError(str(err)) from None
    uri = tracking.resolve_tracking_uri(opts.tracking_uri, s.mlflow.tracking_uri)
    started = time.perf_counter()
    prepared = get_task(space.base.task).prepare(space.base)  # once, in the driver, before Ray starts
    store = tracking.open_store_in_background(uri, space.experiment)  # overlaps Ray's start; writes nothing
    init_ray(opts.address)
    import ray

    check_storage_reach(storage, opts.shared_storage)
    conc = concurrency(space, ray.cluster_resources())
    retries = max_failures(space, sum(1 for n in ray.nodes() if n.get("Alive")))
    scheduler = None if opts.resume else build_scheduler(space)
    search_alg = None if opts.resume else searcher(space, conc, scheduler)  # fails before any MLflow run exists
    if search_alg is not None and (first := first_trial(space)):
        point, drawn = first
        print("the first trial trains the base config's "
              + ", ".join(f"{k}={v}" for k, v in point.items() if k not in drawn) + " (search.start_from_base)"
              + (f"; drawn, the base's value lying outside the space: {', '.join(f'{k}={point[k]}' for k in drawn)}"
                 if drawn else ""), flush=True)
    store.join()
    if opts.resume:
        exp_dir = find_resume_dir(storage, space, opts.resume)
        name = exp_dir.root.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
        runs = SweepRuns.resume(json.loads(exp_dir.read_text(STATE_FILE)))
    else:
        name = f"{space.name}-{time.strftime('%Y%m%d-%H%M%S')}"
        exp_dir = Storage(storage.child(name))
        runs = SweepRuns.create(space, uri, name, conc, prepared.get("data"), folder=exp_dir.root)
        exp_dir.write_bytes(json.dumps({**runs.state(), "space_file": str(space.path.resolve()),
                                        "seed": s.search.seed}, indent=1).encode("utf-8"), STATE_FILE)
    features = start_cache(f"spanfirst-features-{name}-{os.getpid()}")
    # a trial paused at a rung resumes from its checkpoint: every epoch writes the training state
    base = apply_overrides(space.base, {"train.max_failures": retries,
                                        "train.save_training_state": s.scheduler.promotion
                                        or space.base.train.save_training_state}, "the sweep's scheduler")
    ctx = {"base": base.to_dict(), "prepared": prepared, "runs": runs, "storage": exp_dir.root,
           "seed": s.search.seed, "sweep_name": name, "gpus_per_worker": s.trial.gpus_per_worker or None,
           "features": features}
    trainable = tune.with_resources(tune.with_parameters(run_trial, ctx=ctx), trial_resources(space))
    stopper, trial_ids = None, TrialIds()
    if opts.resume:  # finished trials stay; unfinished and errored ones start again, from their latest
        # checkpoint where they wrote one (train.max_failures > 0), from scratch otherwise
        tuner = tune.Tuner.restore(exp_dir.root, trainable=trainable, resume_unfinished=True,
                                   resume_errored=False, restart_errored=True)
    else:
        stopper = epoch_budget(space)
        tuner = tune.Tuner(
            trainable, param_space=space.tune_space(),
            # reuse_actors: a trial's process (imports, torch threads) serves the next trial
            tune_config=tune.TuneConfig(metric=s.metric, mode="max", search_alg=search_alg, reuse_actors=True,
                                        scheduler=scheduler, num_samples=s.search.num_samples,
                                        max_concurrent_trials=None if s.search.algorithm == "random"
                                        or isinstance(search_alg, PausedAwareLimiter) else conc,
                                        time_budget_s=opts.time_budget_s),
            run_config=tune.RunConfig(name=name, storage_path=storage.root, verbose=opts.verbose,
                                      failure_config=tune.FailureConfig(max_failures=retries), stop=stopper,
                                      callbacks=[TrialLines(scheduler, stopper, opts.time_budget_s,
                                                            s.scheduler.max_epochs, s.metric), trial_ids]),
        )
    fit_started, fit_started_at = time.perf_counter(), time.time()
    saved_env = {TUNE_STATE_ENV: os.environ.get(TUNE_STATE_ENV)}
    os.environ.setdefault(TUNE_STATE_ENV, TUNE_STATE_PERIOD_S)  # read by the Tune driver only, in fit()
    try:
        try:
            grid = tuner.fit()
        finally:
            restore(saved_env)
        budget_hit = bool(opts.time_budget_s) and time.perf_counter() - fit_started >= opts.time_budget_s
        trials = summarize(grid, space, budget_hit, getattr(scheduler, "stopped", set()),
                           epochs_spent=bool(stopper and stopper.fired), ids=trial_ids.by_path)
        set_startups(trials, fit_started_at)
        run_ids = runs.close_trials(trials, name, space.base.task)
        runs.log_summary(trials, run_ids, exp_dir, s.metric)
        best, registered = runs.register_best(trials, run_ids, exp_dir, space, name,
                                                {"runtime": opts.runtime} if opts.runtime else None)
        feature_stats = cache_stats(features)
        ray.kill(features)  # its features are no longer needed; a driver that runs more sweeps keeps no copy
    except BaseException as err:
        runs.fail(err)
        raise
    outcome = SweepOutcome(name, exp_dir.root, runs.uri, runs.parent_run_id, conc, time.perf_counter() - started,
                           trials, run_ids, best, registered, feature_stats, runs.experiment_id)
    runs.finish(outcome.wall_seconds)
    return outcome


def summarize(grid: Any, space: SweepSpace, budget_hit: bool, asha_stopped: set[str],
              epochs_spent: bool = False, ids: dict[str, str] | None = None) -> list[TrialSummary]:
    """Each trial's history, status and sampled params from the Tuner's results; ``ids`` maps
    results folders to trial ids (:class:`TrialIds`; a resumed sweep has none)."""
    s = space.spec
    trials = []
    for result in grid:
        # Tune fills in ``trial_id`` (and ``config``, once the trial's actor started) in every
        # result, also of a trial that never reported (but see TrialIds); one that never started
        # has no config (it has no MLflow run either: only its row in the trials table lacks the params).
        metrics = result.metrics or {}
        trial_id = (ids or {}).get(result.path) or metrics["trial_id"]
        history = history_rows(result.metrics_dataframe)
        status = classify(history, result.error is not None, s.scheduler.max_epochs,
                          space.base.train.early_stopping_patience,
                          stopped_by_scheduler=trial_id in asha_stopped,
                          budget_exhausted=budget_hit or epochs_spent,
                          scheduler_status=STOP_STATUS[s.scheduler.type],
                          budget_status=STOPPED_BY_EPOCH_BUDGET if epochs_spent else STOPPED_BY_BUDGET)
        params = {k: v for k, v in (result.config or {}).items() if k in space.dists}
        trials.append(TrialSummary(trial_id, status, params, history, s.metric,
                                   None if result.error is None else str(result.error)[:2000]))
    return trials


def stopped_count(outcome: SweepOutcome) -> int:
    return sum(t.status in SCHEDULER_STOPS for t in outcome.trials)
