"""A sweep's MLflow runs, owned by one object: the parent run, one child run per trial, their
final statuses, and the best checkpoint registered with the champion rule.

:class:`SweepRuns` holds only the tracking URI and two ids, so the driver hands it to every
trial (pickled in the sweep's shared context) and the trial process and its Train controller
use the same methods on their side: a trial's child run is opened on its first epoch report,
reused when the trial is started again (``--resume``, a restarted trial), and closed by the
trial when it ends by itself; the driver closes the rest after ``fit()``, because ASHA kills a
stopped trial's process before any ``finally`` runs. Everything goes through explicit clients
(:func:`spanfirst.tracking.client`); the one block that needs MLflow's process-wide URIs
(logging the model) sets and restores them (:func:`spanfirst.tracking.use_uri`).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spanfirst import tracking

if TYPE_CHECKING:
    from spanfirst.serving.register import Registration
    from spanfirst.sweep.space import SweepSpace
    from spanfirst.sweep.storage import Storage
    from spanfirst.sweep.summary import TrialSummary

TRIAL_TAG = "spanfirst.trial_id"
STATUS_TAG = "spanfirst.status"
PARENT_TAG = "mlflow.parentRunId"  # MLflow's own: the UI nests child runs under their parent
RESTARTS_TAG = "spanfirst.restarts"
ERROR_TAG = "spanfirst.error"
# logged on every epoch report (spanfirst.train.loop): its last timestamp is when the trial last
# trained, the end time its run gets, not the moment the driver closes it after fit()
EPOCH_METRIC = "epoch"
# a trial's status (spanfirst.sweep.summary) -> the MLflow run status; every other one is a stop
RUN_STATUS = {"completed": "FINISHED", "failed": "FAILED"}


def trial_index(trial_id: str) -> int:
    """Tune trial ids end in a zero-padded running number: ``a1b2c_00003`` -> 3."""
    tail = trial_id.rsplit("_", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def trial_run_name(trial_id: str) -> str:
    return f"trial-{trial_index(trial_id):03d}"


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], check=False, cwd=Path(__file__).resolve().parent,
                             text=True, capture_output=True, timeout=10)
        return out.stdout.strip() if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


DRIVER_TAG = "spanfirst.driver"  # host:pid:start time of the process driving the sweep
FOLDER_TAG = "spanfirst.experiment_dir"
SPACE_TAG = "spanfirst.space_file"
LOST_TAG = "spanfirst.lost_driver"


def driver_id() -> str:
    import socket

    import psutil

    me = psutil.Process()
    return f"{socket.gethostname()}:{me.pid}:{int(me.create_time())}"


def driver_alive(value: str) -> bool | None:
    """Whether the driver a sweep's tag names still runs; None when it ran on another host."""
    import socket

    import psutil

    try:
        host, pid, started = value.rsplit(":", 2)
        if host != socket.gethostname():
            return None
        return int(psutil.Process(int(pid)).create_time()) == int(started)
    except (ValueError, psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def close_lost_sweeps(uri: str, experiment_id: str) -> list[str]:
    """Sweeps of this experiment still RUNNING in MLflow whose driver process is gone from this
    machine (killed, or its machine rebooted): their runs would otherwise stay RUNNING for ever.
    The parent and its running trials become KILLED, with a tag saying how to continue the sweep
    (``--resume`` reopens them). Sweeps driven from another host are left alone. Returns their ids."""
    c = tracking.client(uri)
    closed = []
    for run in c.search_runs([experiment_id], max_results=1000, filter_string=(
            "attributes.status = 'RUNNING' and tags.`spanfirst.kind` = 'sweep'")):
        tags = run.data.tags
        if DRIVER_TAG not in tags or driver_alive(tags[DRIVER_TAG]) is not False:
            continue
        how = (f"its driver ({tags[DRIVER_TAG]}) ended without closing it; continue it with: python pipelines/sweep.py "
               f"{tags.get(SPACE_TAG, 'SPACE')} --resume {tags.get(FOLDER_TAG) or 'DIR'}")
        for child in c.search_runs([experiment_id], max_results=10000, filter_string=(
                f"attributes.status = 'RUNNING' and tags.`{PARENT_TAG}` = '{run.info.run_id}'")):
            c.set_tag(child.info.run_id, STATUS_TAG, "interrupted")
            c.set_terminated(child.info.run_id, "KILLED")
        c.set_tag(run.info.run_id, LOST_TAG, how)
        c.set_terminated(run.info.run_id, "KILLED")
        print(f"closed sweep run {run.info.run_id} ({tags.get('spanfirst.sweep', '?')}): {how}", file=sys.stderr)
        closed.append(run.info.run_id)
    return closed


@dataclass(frozen=True)
class SweepRuns:
    uri: str
    experiment_id: str
    parent_run_id: str

    # --- the parent run (driver) ---

    @classmethod
    def create(cls, space: SweepSpace, uri: str, name: str, concurrency: int,
               data: dict[str, dict[str, Any]] | None = None, folder: str = "") -> SweepRuns:
        """A new parent run in the space's experiment: space file and resolved space, seed,
        versions, git commit, the search settings as params, the data files as dataset inputs.
        ``folder``: the sweep's experiment folder (what ``--resume`` takes). Sweeps of the same
        experiment left running by a lost driver are closed first (:func:`close_lost_sweeps`)."""
        import ray
        import torch

        experiment_id = tracking.ensure_experiment(uri, space.experiment)
        close_lost_sweeps(uri, experiment_id)
        c = tracking.client(uri)
        s = space.spec
        run_id = c.create_run(experiment_id, run_name=name, tags={
            "spanfirst.kind": "sweep", "spanfirst.sweep": name, "spanfirst.task": space.base.task,
            "mlflow.source.git.commit": git_commit(), "ray_version": ray.__version__,
            "torch_version": torch.__version__, DRIVER_TAG: driver_id(), FOLDER_TAG: folder,
            SPACE_TAG: str(space.path.resolve()),
        }).info.run_id
        tracking.log_params(uri, run_id, {
            "space_file": space.path.name, "search.seed": s.search.seed, "search.algorithm": s.search.algorithm,
            "search.num_samples": s.search.num_samples, "max_concurrent_trials": concurrency, "metric": s.metric,
            "scheduler.grace_period": s.scheduler.grace_period,
            "scheduler.reduction_factor": s.scheduler.reduction_factor,
            "scheduler.max_epochs": s.scheduler.max_epochs, "scheduler.type": s.scheduler.type,
            "search.max_trial_epochs": s.search.max_trial_epochs, "trial.workers": s.trial.workers,
            "trial.cpus_per_worker": s.trial.cpus_per_worker, "trial.gpus_per_worker": s.trial.gpus_per_worker,
            "task": space.base.task, "base_config": s.base,
        })
        c.log_artifact(run_id, str(space.path), "space")
        c.log_dict(run_id, space.resolved(), "space/resolved_space.json")
        c.log_dict(run_id, space.base.to_dict(), "space/base_config.json")
        tracking.log_datasets(uri, run_id, data or {})
        return cls(uri, experiment_id, run_id)

    @classmethod
    def resume(cls, state: dict[str, Any]) -> SweepRuns:
        """The runs of an interrupted sweep, from its saved :meth:`state`; the parent runs again."""
        runs = cls(state["tracking_uri"], state["experiment_id"], state["parent_run_id"])
        c = tracking.client(runs.uri)
        c.update_run(runs.parent_run_id, status="RUNNING")
        c.set_tag(runs.parent_run_id, DRIVER_TAG, driver_id())
        close_lost_sweeps(runs.uri, runs.experiment_id)
        return runs

    def state(self) -> dict[str, str]:
        """What ``--resume`` needs to find these runs again (saved in the sweep's folder)."""
        return {"tracking_uri": self.uri, "experiment_id": self.experiment_id, "parent_run_id": self.parent_run_id}

    def finish(self, wall_seconds: float) -> None:
        tracking.log_metrics(self.uri, self.parent_run_id, {"sweep_wall_seconds": wall_seconds}, step=0)
        tracking.client(self.uri).set_terminated(self.parent_run_id, "FINISHED")

    def fail(self, err: BaseException) -> None:
        c = tracking.client(self.uri)
        c.set_tag(self.parent_run_id, "spanfirst.error", repr(err)[:4000])
        c.set_terminated(self.parent_run_id, "FAILED")

    # --- one trial's child run (trial process and its Train controller) ---

    @staticmethod
    def trial_tags(sweep_name: str, task: str) -> dict[str, str]:
        return {"spanfirst.sweep": sweep_name, "spanfirst.task": task}

    def find_trial(self, trial_id: str) -> Any | None:
        """The run already logged for this trial (a resumed sweep must not create a second one)."""
        found = tracking.client(self.uri).search_runs(
            [self.experiment_id],
            filter_string=f"tags.`{TRIAL_TAG}` = '{trial_id}' and tags.`{PARENT_TAG}` = '{self.parent_run_id}'",
            max_results=5,
        )
        return found[0] if found else None

    def start_trial(self, trial_id: str, run_name: str, tags: dict[str, str],
                    restart: bool = True, start_time_ms: int | None = None) -> tuple[str, set[int]]:
        """(run id, epochs already logged): reuses this trial's run if it has one, creates it otherwise.

        ``restart``: an existing run means the trial was started again (counted in a tag).
        ``start_time_ms``: when the trial itself started (ms since the epoch), the new run's start
        time; now if not given. An existing run keeps its start time."""
        c = tracking.client(self.uri)
        existing = self.find_trial(trial_id)
        if existing is not None:
            run_id = existing.info.run_id
            c.update_run(run_id, status="RUNNING")
            logged = {m.step for m in c.get_metric_history(run_id, "dev_score")}
            if restart:
                c.set_tag(run_id, RESTARTS_TAG, str(int(existing.data.tags.get(RESTARTS_TAG, "0")) + 1))
        else:
            run = c.create_run(self.experiment_id, run_name=run_name, start_time=start_time_ms,
                               tags={PARENT_TAG: self.parent_run_id, TRIAL_TAG: trial_id, **tags})
            run_id, logged = run.info.run_id, set()
        c.set_tag(run_id, STATUS_TAG, "running")
        return run_id, logged

    def trial_end_time(self, run_id: str) -> int:
        """When the trial's run last logged an epoch (ms), else now: the end time its run gets."""
        history = tracking.client(self.uri).get_metric_history(run_id, EPOCH_METRIC)
        return max((m.timestamp for m in history), default=None) or int(time.time() * 1000)

    def finish_trial(self, run_id: str, status: str) -> None:
        """Final trial status tag (completed / stopped_by_asha / failed / ...) and MLflow run status,
        ended at the trial's last epoch report (:meth:`trial_end_time`)."""
        c = tracking.client(self.uri)
        c.set_tag(run_id, STATUS_TAG, status)
        c.set_terminated(run_id, status=RUN_STATUS.get(status, "KILLED"), end_time=self.trial_end_time(run_id))

    def fail_trial(self, trial_id: str, run_name: str, tags: dict[str, str], params: dict[str, Any],
                   error: str, start_time_ms: int | None = None) -> None:
        """A trial whose training raised: its run (created now if it never reported) FAILED, with the error."""
        run_id, _ = self.start_trial(trial_id, run_name, tags, restart=False, start_time_ms=start_time_ms)
        tracking.log_params(self.uri, run_id, params)
        tracking.client(self.uri).set_tag(run_id, ERROR_TAG, error[-4000:])
        self.finish_trial(run_id, "failed")

    def complete_trial(self, trial_id: str) -> None:
        """A trial that trained to its end (all epochs, or its own early stopping)."""
        found = self.find_trial(trial_id)
        if found is not None:
            self.finish_trial(found.info.run_id, "completed")

    # --- after fit() (driver) ---

    def close_trials(self, trials: list[TrialSummary], sweep_name: str, task: str) -> dict[str, str]:
        """Every child run's final status and best score; returns run ids by trial id.

        Runs of trials the scheduler stopped are still RUNNING (their process was killed): KILLED
        now, with the status the summary gave them. A failed trial (its retries spent; a lost
        process leaves no error of its own) gets Tune's error text, and a run if it never had one."""
        c = tracking.client(self.uri)

        def children() -> dict[str | None, Any]:
            found = c.search_runs([self.experiment_id], max_results=10000,
                                  filter_string=f"tags.`{PARENT_TAG}` = '{self.parent_run_id}'")
            return {r.data.tags.get(TRIAL_TAG): r for r in found}

        by_trial = children()
        never_reported = [t for t in trials if t.status == "failed" and t.trial_id not in by_trial]
        for t in never_reported:
            self.fail_trial(t.trial_id, trial_run_name(t.trial_id), self.trial_tags(sweep_name, task), t.params,
                            t.error or "failed before its first report")
        if never_reported:
            by_trial = children()
        for t in trials:
            run = by_trial.get(t.trial_id)
            if run is None:
                continue
            if t.status == "failed" and t.error and ERROR_TAG not in run.data.tags:
                c.set_tag(run.info.run_id, ERROR_TAG, t.error[-4000:])
            if run.info.status == "RUNNING" or run.data.tags.get(STATUS_TAG) != t.status:
                self.finish_trial(run.info.run_id, t.status)
            if t.best is not None:
                tracking.log_metrics(self.uri, run.info.run_id,
                                     {f"best_{t.metric}": t.score, "best_epoch": t.best["epoch"]}, step=t.epochs)
        return {tid: r.info.run_id for tid, r in by_trial.items() if tid}

    def log_summary(self, trials: list[TrialSummary], run_ids: dict[str, str], exp_dir: Storage,
                    metric: str) -> None:
        """Trials table and progress plot (on the parent run and beside the Tune results), trial counts."""
        from spanfirst.sweep.summary import plot_progress, write_table

        with tempfile.TemporaryDirectory(prefix="spanfirst-sweep-") as tmp:
            write_table(trials, Path(tmp) / "trials.csv", run_ids)
            plot_progress(trials, Path(tmp) / "progress.png", metric)
            tracking.client(self.uri).log_artifacts(self.parent_run_id, tmp, "sweep")
            for name in ("trials.csv", "progress.png"):
                exp_dir.write_bytes((Path(tmp) / name).read_bytes(), name)
        overheads = [t.overhead for t in trials if t.overhead is not None]
        startups = [t.startup for t in trials if t.startup is not None]
        counts = {status: sum(t.status == status for t in trials) for status in {t.status for t in trials}}
        tracking.log_metrics(self.uri, self.parent_run_id, {
            "trials": len(trials), **{f"trials_{k}": v for k, v in counts.items()},
            "trial_overhead_seconds_mean": sum(overheads) / len(overheads) if overheads else float("nan"),
            "trial_startup_seconds_median": statistics.median(startups) if startups else float("nan"),
        }, step=0)

    def register_best(self, trials: list[TrialSummary], run_ids: dict[str, str], exp_dir: Storage,
                      space: SweepSpace, sweep_name: str,
                      model_config: dict[str, Any] | None = None) -> tuple[TrialSummary | None, Registration | None]:
        """The best trial whose checkpoint is still there, logged as the parent run's model and
        registered under the space's model name; champion only if it beats the current one."""
        from spanfirst.serving.register import register_in_run
        from spanfirst.sweep.storage import checkpoint_dir, checkpoint_exists

        c = tracking.client(self.uri)
        ranked = [t for t in trials if t.checkpoint and checkpoint_exists(exp_dir, t.checkpoint)]
        if not ranked:
            c.set_tag(self.parent_run_id, "spanfirst.best", "none: no trial left a checkpoint")
            return None, None
        best = max(ranked, key=lambda t: t.score)
        c.set_tag(self.parent_run_id, "spanfirst.best_trial", best.trial_id)
        c.set_tag(self.parent_run_id, "spanfirst.best_run_id", run_ids.get(best.trial_id, ""))
        tracking.log_metrics(self.uri, self.parent_run_id, {f"best_{space.spec.metric}": best.score}, step=0)
        with checkpoint_dir(exp_dir, best.checkpoint) as local:  # on cloud storage: a temporary download
            reg = register_in_run(self.uri, self.parent_run_id, local, space.base.task, space.registered_model,
                                  space.spec.metric, best.score,
                                  version_tags={TRIAL_TAG: best.trial_id, "spanfirst.sweep": sweep_name},
                                  model_config=model_config)
        return best, reg
