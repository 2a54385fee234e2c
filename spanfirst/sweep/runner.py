"""The sweep driver: a Ray Tune ``Tuner`` (ASHA) over trials that each run the project's Ray Train job.

Data is prepared once here and shared with every trial through the object store. Each trial
function reserves (almost) nothing itself (a tiny memory request: ``{"cpu": 0}`` alone is
rejected) while its Train workers reserve the CPUs/GPUs, and concurrency is bounded by what the
cluster fits: a trial that held a CPU while its workers waited for it is how a 2-core machine
deadlocks. The driver owns the MLflow parent run, closes runs of stopped trials (ASHA kills
their process before any ``finally``), writes the trials table and plot, and registers the best
checkpoint.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


from spanfirst import tracking
from spanfirst.sweep.space import SweepSpace, load_space
from spanfirst.sweep.storage import Storage, StorageError, checkpoint_dir, checkpoint_exists
from spanfirst.sweep.schedulers import build_scheduler, epoch_budget
from spanfirst.train.ray_session import init_ray
from spanfirst.sweep.summary import (SCHEDULER_STOPS, STOP_STATUS, STOPPED_BY_BUDGET, STOPPED_BY_EPOCH_BUDGET, TrialSummary,
                                     classify, history_rows, plot_progress, write_table)

TRIAL_MEMORY = 32 * 2**20  # bytes: the trial function's whole reservation
STATE_FILE = "sweep.json"  # in the Tune experiment folder: what --resume needs to find its MLflow runs
# Tune saves its experiment state (what --resume restores) at most every 10 s by default; a
# driver killed in between would rerun trials that had already finished.
TUNE_STATE_PERIOD_S = "2"


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
    registered: dict[str, Any] = field(default_factory=dict)


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


def searcher(space: SweepSpace, max_concurrent: int) -> Any:
    """The search algorithm, seeded. Tune ignores ``max_concurrent_trials`` for the random
    generator (it only wraps ``Searcher``s), so that one carries its own bound."""
    s = space.spec.search
    grid = [k for k, (kind, _) in space.dists.items() if kind == "grid"]
    if s.algorithm == "random":
        from ray.tune.search.basic_variant import BasicVariantGenerator

        return BasicVariantGenerator(random_state=s.seed, max_concurrent=max_concurrent)
    if grid:
        raise SweepError(f"{space.path}: 'grid' ({', '.join(grid)}) needs search.algorithm: random")
    try:
        if s.algorithm == "optuna":
            from ray.tune.search.optuna import OptunaSearch

            return OptunaSearch(seed=s.seed)
        from ray.tune.search.hyperopt import HyperOptSearch

        return HyperOptSearch(random_state_seed=s.seed)
    except (ImportError, AssertionError) as err:
        raise SweepError(f"search.algorithm '{s.algorithm}' needs the '{s.algorithm}' package: {err}") from None


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent, text=True,
                             capture_output=True, timeout=10)
        return out.stdout.strip() if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


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


def open_parent_run(space: SweepSpace, uri: str, experiment_id: str, name: str, concurrency_: int) -> str:
    """The sweep's parent run: space file and resolved space, seed, versions, git commit."""
    import ray
    import torch

    c = tracking.client(uri)
    s = space.spec
    run = c.create_run(experiment_id, run_name=name, tags={
        "spanfirst.kind": "sweep", "spanfirst.sweep": name, "spanfirst.task": space.base.task,
        "mlflow.source.git.commit": git_commit(), "ray_version": ray.__version__, "torch_version": torch.__version__,
    })
    run_id = run.info.run_id
    tracking.log_params(uri, run_id, {
        "space_file": space.path.name, "search.seed": s.search.seed, "search.algorithm": s.search.algorithm,
        "search.num_samples": s.search.num_samples, "max_concurrent_trials": concurrency_, "metric": s.metric,
        "scheduler.grace_period": s.scheduler.grace_period, "scheduler.reduction_factor": s.scheduler.reduction_factor,
        "scheduler.max_epochs": s.scheduler.max_epochs, "scheduler.type": s.scheduler.type,
        "search.max_trial_epochs": s.search.max_trial_epochs, "trial.workers": s.trial.workers,
        "trial.cpus_per_worker": s.trial.cpus_per_worker, "trial.gpus_per_worker": s.trial.gpus_per_worker,
        "task": space.base.task, "base_config": s.base,
    })
    c.log_artifact(run_id, str(space.path), "space")
    c.log_dict(run_id, space.resolved(), "space/resolved_space.json")
    c.log_dict(run_id, space.base.to_dict(), "space/base_config.json")
    return run_id


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
    init_ray(opts.address)
    import ray

    check_storage_reach(storage, opts.shared_storage)
    conc = concurrency(space, ray.cluster_resources())
    search_alg = None if opts.resume else searcher(space, conc)  # fails before any MLflow run exists
    if opts.resume:
        exp_dir = find_resume_dir(storage, space, opts.resume)
        state = json.loads(exp_dir.read_text(STATE_FILE))
        name = exp_dir.root.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
        uri, experiment_id, parent_id = state["tracking_uri"], state["experiment_id"], state["parent_run_id"]
        tracking.client(uri).update_run(parent_id, status="RUNNING")
    else:
        name = f"{space.name}-{time.strftime('%Y%m%d-%H%M%S')}"
        exp_dir = Storage(storage.child(name))
        experiment_id = tracking.ensure_experiment(uri, space.experiment)
        parent_id = open_parent_run(space, uri, experiment_id, name, conc)
        exp_dir.write_bytes(json.dumps({
            "tracking_uri": uri, "experiment_id": experiment_id, "parent_run_id": parent_id,
            "space_file": str(space.path.resolve()), "seed": s.search.seed}, indent=1).encode("utf-8"), STATE_FILE)
    import mlflow

    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)  # the best model is registered beside its runs, whatever the environment says
    mlflow.set_experiment(experiment_id=experiment_id)  # the driver's choice wins over Ray helpers' defaults
    ctx = {"base": space.base.to_dict(), "prepared": prepared, "tracking_uri": uri, "experiment_id": experiment_id,
           "parent_run_id": parent_id, "storage": exp_dir.root, "seed": s.search.seed, "sweep_name": name,
           "gpus_per_worker": s.trial.gpus_per_worker or None}
    trainable = tune.with_resources(tune.with_parameters(run_trial, ctx=ctx), {"cpu": 0, "memory": TRIAL_MEMORY})
    scheduler = stopper = None
    if opts.resume:  # finished trials stay; unfinished and errored ones start again (trials keep no Tune state)
        tuner = tune.Tuner.restore(exp_dir.root, trainable=trainable, resume_unfinished=True,
                                   resume_errored=False, restart_errored=True)
    else:
        scheduler, stopper = build_scheduler(space), epoch_budget(space)
        tuner = tune.Tuner(
            trainable, param_space=space.tune_space(),
            tune_config=tune.TuneConfig(metric=s.metric, mode="max", search_alg=search_alg,
                                        scheduler=scheduler, num_samples=s.search.num_samples,
                                        max_concurrent_trials=None if s.search.algorithm == "random" else conc,
                                        time_budget_s=opts.time_budget_s),
            run_config=tune.RunConfig(name=name, storage_path=storage.root, verbose=opts.verbose,
                                      failure_config=tune.FailureConfig(max_failures=0), stop=stopper),
        )
    fit_started = time.perf_counter()
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", TUNE_STATE_PERIOD_S)  # read by the Tune driver only
    try:
        grid = tuner.fit()
        budget_hit = bool(opts.time_budget_s) and time.perf_counter() - fit_started >= opts.time_budget_s
        trials = summarize(grid, space, budget_hit, getattr(scheduler, "stopped", set()),
                           epochs_spent=bool(stopper and stopper.fired))
        run_ids = close_trial_runs(uri, experiment_id, parent_id, trials)
        outcome = SweepOutcome(name, exp_dir.root, uri, parent_id, conc, 0.0, trials, run_ids)
        finish_parent(outcome, space)
    except BaseException as err:
        c = tracking.client(uri)
        c.set_tag(parent_id, "spanfirst.error", repr(err)[:4000])
        c.set_terminated(parent_id, "FAILED")
        raise
    outcome.wall_seconds = time.perf_counter() - started
    tracking.log_metrics(uri, parent_id, {"sweep_wall_seconds": outcome.wall_seconds}, step=0)
    tracking.client(uri).set_terminated(parent_id, "FINISHED")
    return outcome


def summarize(grid: Any, space: SweepSpace, budget_hit: bool, asha_stopped: set[str],
              epochs_spent: bool = False) -> list[TrialSummary]:
    """Each trial's history, status and sampled params from the Tuner's results."""
    s = space.spec
    trials = []
    # ResultGrid keeps results in the order of its experiment analysis' trials; the Trial
    # objects carry the ids also for trials that never reported.
    for result, trial in zip(grid, grid._experiment_analysis.trials):
        history = history_rows(result.metrics_dataframe)
        status = classify(history, result.error is not None, s.scheduler.max_epochs,
                          space.base.train.early_stopping_patience,
                          stopped_by_scheduler=trial.trial_id in asha_stopped,
                          budget_exhausted=budget_hit or epochs_spent,
                          scheduler_status=STOP_STATUS[s.scheduler.type],
                          budget_status=STOPPED_BY_EPOCH_BUDGET if epochs_spent else STOPPED_BY_BUDGET)
        params = {k: v for k, v in (trial.config or {}).items() if k in space.dists}
        trials.append(TrialSummary(trial.trial_id, status, params, history, s.metric,
                                   None if result.error is None else str(result.error)[:2000]))
    return trials


def close_trial_runs(uri: str, experiment_id: str, parent_id: str, trials: list[TrialSummary]) -> dict[str, str]:
    """Set every child run's final status; ASHA-stopped trials' runs are still RUNNING (KILLED now)."""
    c = tracking.client(uri)
    runs = c.search_runs([experiment_id], filter_string=f"tags.`{tracking.PARENT_TAG}` = '{parent_id}'",
                         max_results=10000)
    by_trial = {r.data.tags.get(tracking.TRIAL_TAG): r for r in runs}
    for t in trials:
        run = by_trial.get(t.trial_id)
        if run is None:
            continue
        if run.info.status == "RUNNING" or run.data.tags.get(tracking.STATUS_TAG) != t.status:
            tracking.finish_run(uri, run.info.run_id, t.status)
        if t.best is not None:
            tracking.log_metrics(uri, run.info.run_id, {f"best_{t.metric}": t.score, "best_epoch": t.best["epoch"]},
                                 step=t.epochs)
    return {tid: r.info.run_id for tid, r in by_trial.items() if tid}


def finish_parent(outcome: SweepOutcome, space: SweepSpace) -> None:
    """Trials table, progress plot, sweep metrics; then the best checkpoint as a registered model."""
    import tempfile

    from spanfirst.serving.log_model import log_checkpoint_model

    uri, parent, trials = outcome.tracking_uri, outcome.parent_run_id, outcome.trials
    c = tracking.client(uri)
    with tempfile.TemporaryDirectory(prefix="spanfirst-sweep-") as tmp:
        write_table(trials, Path(tmp) / "trials.csv", outcome.run_ids)
        plot_progress(trials, Path(tmp) / "progress.png", space.spec.metric)
        c.log_artifacts(parent, tmp, "sweep")
        exp_dir = Storage(outcome.experiment_dir)
        for name in ("trials.csv", "progress.png"):  # also beside the Tune results
            exp_dir.write_bytes((Path(tmp) / name).read_bytes(), name)
    overheads = [t.overhead for t in trials if t.overhead is not None]
    counts = {status: sum(t.status == status for t in trials) for status in {t.status for t in trials}}
    tracking.log_metrics(uri, parent, {
        "trials": len(trials), **{f"trials_{k}": v for k, v in counts.items()},
        "trial_overhead_seconds_mean": sum(overheads) / len(overheads) if overheads else float("nan"),
    }, step=0)
    ranked = [t for t in trials if t.checkpoint and checkpoint_exists(exp_dir, t.checkpoint)]
    if not ranked:
        c.set_tag(parent, "spanfirst.best", "none: no trial left a checkpoint")
        return
    best = max(ranked, key=lambda t: t.score)
    outcome.best = best
    c.set_tag(parent, "spanfirst.best_trial", best.trial_id)
    c.set_tag(parent, "spanfirst.best_run_id", outcome.run_ids.get(best.trial_id, ""))
    tracking.log_metrics(uri, parent, {f"best_{space.spec.metric}": best.score}, step=0)
    import mlflow

    name = space.registered_model
    with mlflow.start_run(run_id=parent), checkpoint_dir(exp_dir, best.checkpoint) as local:
        info, version = log_checkpoint_model(local, space.base.task, name)
    number = str(version.version)  # an int from register_model, a str from the client
    promoted, message = tracking.promote_if_better(uri, name, number, space.spec.metric, best.score)
    c.set_model_version_tag(name, number, "spanfirst.trial_id", best.trial_id)
    c.set_model_version_tag(name, number, "spanfirst.sweep", outcome.name)
    c.set_tag(parent, "spanfirst.registered", f"{name} v{number}{' (champion)' if promoted else ''}")
    outcome.registered = {"name": name, "version": number, "champion": promoted, "message": message,
                          "model_uri": info.model_uri}


def stopped_count(outcome: SweepOutcome) -> int:
    return sum(t.status in SCHEDULER_STOPS for t in outcome.trials)
