"""What one Tune trial runs: the project's training loop, tracked in MLflow.

A trial is a function (Ray Train V2: a ``TorchTrainer`` cannot be handed to the ``Tuner``) that
applies its sampled values to the base config and trains: a single-worker trial runs the training
loop in its own process (:func:`train_in_trial`), a multi-worker one fits the Ray Train job
(DDP). Its MLflow child run is the sweep's (:class:`~spanfirst.sweep.runs.SweepRuns`): opened, or
on resume found, on the first report, closed here when the trial ends by itself; per-epoch logging
is :class:`TrialLog`'s, fed with rank 0's metrics once per epoch, so exactly one process logs.
"""

from __future__ import annotations

import ctypes
import gc
import os
import sys
import time
import traceback
from typing import Any

# A Ray DeveloperAPI (Train V2 -> Tune); its ``after_report`` signature is checked in spanfirst.compat's notes.
from ray.tune.integration.ray_train import TuneReportCallback

from spanfirst import checkpoint as ckpt
from spanfirst import tracking
from spanfirst.sweep.runs import SweepRuns, trial_index, trial_run_name
from spanfirst.sweep.storage import Storage

NODE_TAG = "ray.node_id"  # where the trial's rank-0 Train worker ran (the loop reports ``node_id``)
NODES_TAG = "ray.node_ids"  # every node any rank of it ran on, restarts included


def trial_seed(sweep_seed: int, index: int) -> int:
    """A per-trial training seed that depends only on the sweep seed and the trial's number."""
    return (sweep_seed * 1_000_003 + index * 7919 + 17) % (2**31 - 1)


class TrialLog:
    """The trial's MLflow child run, fed once per epoch with rank 0's metrics.

    The run is opened (or, on resume, found by its trial-id tag) on the first report, not before
    training: importing MLflow and creating the run would otherwise add ~2 s to every trial's
    start. It starts at the trial's own start time and is tagged with the Ray node of the rank-0
    worker (``ray.node_id``; all ranks' nodes in ``ray.node_ids``). :meth:`record` adds
    ``trial_elapsed_seconds`` (trial start -> this report) and ``trial_overhead_seconds`` (trial
    function start -> first step: data, model build) and returns the metrics for Tune, with the
    process id and stamps the sweep's start-up measure needs (not logged to MLflow);
    logging comes before Tune sees them, so a trial that ASHA stops on this very report has its
    last epoch recorded.
    """

    def __init__(self, runs: SweepRuns, trial: dict[str, Any], params: dict[str, Any], trial_start: float) -> None:
        import psutil

        self.runs, self.trial, self.params, self.trial_start = runs, trial, params, trial_start
        self.run_id: str | None = None
        self.nodes: list[str] = []  # where its ranks reported from last: a restart may move them
        self.logged_epochs: set[int] = set()
        self.overhead: float | None = None
        # The trial's process, for the sweep's start-up measure (spanfirst.sweep.summary.startups):
        # a reused process serves several trials one after another.
        self.process = {"trial_pid": os.getpid(), "trial_process_started_at": psutil.Process().create_time()}

    def _open_run(self) -> None:
        t = self.trial
        self.run_id, self.logged_epochs = self.runs.start_trial(t["trial_id"], t["run_name"], t["tags"],
                                                                start_time_ms=int(self.trial_start * 1000))
        tracking.log_params(self.runs.uri, self.run_id, self.params)
        if not self.logged_epochs:  # a new run (a restarted trial's run has its datasets)
            tracking.log_datasets(self.runs.uri, self.run_id, t.get("data", {}))

    def _tag_nodes(self, nodes: list[str]) -> None:
        """Where the trial trains now (rank 0's node) and every node it has trained on."""
        c = tracking.client(self.runs.uri)
        earlier = c.get_run(self.run_id).data.tags.get(NODES_TAG, "")
        c.set_tag(self.run_id, NODE_TAG, nodes[0])
        c.set_tag(self.run_id, NODES_TAG, ",".join(sorted(set(nodes) | set(filter(None, earlier.split(","))))))
        self.nodes = nodes

    def record(self, metrics: list[dict[str, Any]], local_checkpoint: str | None,
               checkpoint_path: str | None) -> dict[str, Any]:
        now = time.time()
        m = dict(metrics[0])
        if self.overhead is None:
            self.overhead = max(0.0, float(m.get("first_step_at", now)) - self.trial_start)
        m["trial_overhead_seconds"] = self.overhead
        m["trial_elapsed_seconds"] = now - self.trial_start
        epoch = int(m.get("epoch", 0))
        uri = self.runs.uri
        try:
            if self.run_id is None:
                self._open_run()
            nodes = [str(x.get("node_id", "")) for x in metrics]
            if nodes != self.nodes:
                self._tag_nodes(nodes)
            if epoch not in self.logged_epochs:
                tracking.log_metrics(uri, self.run_id, m, step=epoch)
                self.logged_epochs.add(epoch)
            if local_checkpoint is not None:
                tracking.log_evaluation_artifacts(uri, self.run_id, local_checkpoint)
                tracking.client(uri).set_tag(self.run_id, "spanfirst.checkpoint", checkpoint_path)
        except Exception:  # tracking trouble must not kill a training run; say so loudly
            print(f"spanfirst: MLflow logging failed for trial {self.trial['trial_id']}:\n{traceback.format_exc()}",
                  file=sys.stderr)
        return {**m, **self.process, "reported_at": time.time()}


class SweepReportCallback(TuneReportCallback):
    """A multi-worker trial's reports: runs in the Train controller, which receives every rank's
    metrics and the checkpoint already persisted to storage; logs them, then forwards to Tune."""

    def __init__(self, log: TrialLog) -> None:
        super().__init__()
        self.log = log

    def after_report(self, run_context, metrics: list[dict[str, Any]], checkpoint) -> None:  # noqa: ANN001
        if checkpoint is not None and metrics[0].get("saved_model", 1):  # on cloud storage: a temporary download
            with checkpoint.as_directory() as local:
                m = self.log.record(metrics, local, checkpoint.path)
        else:
            m = self.log.record(metrics, None, None if checkpoint is None else checkpoint.path)
        super().after_report(run_context, [m, *metrics[1:]], checkpoint)


CHECKPOINT_PREFIX = "checkpoint_epoch_"


def stored_checkpoints(folder: Storage, trial_id: str) -> list[tuple[int, str, bool]]:
    """(epoch, path on the storage's filesystem, holds a model) of the trial's checkpoints, oldest
    first. Only whole ones (:meth:`Storage.is_complete`): a folder a lost process left half
    uploaded is deleted."""
    out = []
    for name in folder.subdirs("trials", trial_id):
        tail = name.removeprefix(CHECKPOINT_PREFIX)
        if not (name.startswith(CHECKPOINT_PREFIX) and tail.isdigit()):
            continue
        if not folder.is_complete("trials", trial_id, name):
            folder.remove_dir("trials", trial_id, name)
            continue
        out.append((int(tail), folder.fs_path("trials", trial_id, name),
                    folder.exists("trials", trial_id, name, ckpt.MANIFEST)))
    return sorted(out)


def to_keep(checkpoints: list[tuple[int, str, bool]]) -> set[str]:
    """The newest checkpoint holding a model (the best epoch's: a model is saved only when the
    dev score improves) and the newest of all (where a restart resumes)."""
    keep = {checkpoints[-1][1]} if checkpoints else set()
    models = [c for c in checkpoints if c[2]]
    if models:
        keep.add(models[-1][1])
    return keep


def train_in_trial(cfg: Any, ctx: dict[str, Any], log: TrialLog, folder: Storage, trial_id: str) -> None:
    """A single-worker trial trains in the trial's own process: the same loop (``run_epochs``), no
    Train controller or worker group to start. Checkpoints go where Ray Train would put them
    (``trials/<trial id>/checkpoint_epoch_NNN`` in the sweep's storage), each marked whole once
    uploaded, so a restart never resumes from a partial one; the best and the latest are kept.

    A trial started again (its process or node was lost, ``trial.max_failures``; promoted from a
    rung it paused at, ``scheduler.promotion``; or ``--resume``) continues from the latest
    checkpoint's training state. Each epoch is logged to MLflow before
    its checkpoint is stored and reported: a trial lost in between trains that epoch again but
    logs it once (:class:`TrialLog` skips logged epochs)."""
    import ray
    import torch
    from ray import tune

    from spanfirst.sweep.storage import checkpoint_dir
    from spanfirst.train.features import build_task
    from spanfirst.train.loop import run_epochs, setup_process

    setup_process(cfg)
    device = torch.device("cuda:0" if cfg.train.use_gpu and torch.cuda.is_available() else "cpu")
    task = build_task(cfg, ctx["prepared"], ctx.get("features"))
    node_id = ray.get_runtime_context().get_node_id()
    kept = stored_checkpoints(folder, trial_id)

    def report(metrics: dict[str, Any], ckpt_dir: str | None) -> None:
        m = {**metrics, "node_id": node_id}
        name = f"{CHECKPOINT_PREFIX}{int(m['epoch']):03d}"
        path = folder.fs_path("trials", trial_id, name) if ckpt_dir is not None else None
        if path is not None:
            m["checkpoint_path"] = path
        m = log.record([m], ckpt_dir if ckpt_dir and ckpt.has_model(ckpt_dir) else None, path)
        if ckpt_dir is not None:
            folder.upload_dir(ckpt_dir, "trials", trial_id, name)
            kept.append((int(m["epoch"]), path, ckpt.has_model(ckpt_dir)))
            keep = to_keep(kept)
            for _, old, _ in [c for c in kept if c[1] not in keep]:
                folder.remove_fs_dir(old)
            kept[:] = [c for c in kept if c[1] in keep]
        tune.report(m)

    if cfg.train.resumable and kept:
        with checkpoint_dir(folder, kept[-1][1]) as local:
            if ckpt.has_training_state(local):
                run_epochs(task, cfg, 0, 1, device, report, resume=local)
                return
    run_epochs(task, cfg, 0, 1, device, report)


def release_memory() -> None:
    """Give back what the last trial of this reused process left: a stopped trial's model and
    optimizer can sit in reference cycles that only a full collection frees, and glibc keeps freed
    heap pages unless trimmed. Without this, each trial a process ran added its model and optimizer
    state to the process (multilingual-e5-small with trained embeddings: about 2 GB a trial, until
    Ray's memory monitor killed a trial at 12.6 GB)."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim
        pass


def run_trial(config: dict[str, Any], ctx: dict[str, Any]) -> None:
    """Tune's trainable. ``config``: sampled values by dotted path; ``ctx``: the sweep's shared state
    (base config, prepared data, the feature cache, the sweep's :class:`SweepRuns`, storage, seed),
    put in the object store once."""
    release_memory()
    started = time.time()
    from ray import tune

    from spanfirst.config import apply_overrides, config_from_dict
    from spanfirst.train.trainer import build_trainer

    trial_id = tune.get_context().get_trial_id()
    seed = trial_seed(ctx["seed"], trial_index(trial_id))
    cfg = apply_overrides(config_from_dict(ctx["base"], "sweep base config"), {**config, "train.seed": seed},
                          f"trial {trial_id}")
    runs: SweepRuns = ctx["runs"]
    trial = {"trial_id": trial_id, "run_name": trial_run_name(trial_id),
             "tags": {**SweepRuns.trial_tags(ctx["sweep_name"], cfg.task), "spanfirst.sampled": ",".join(sorted(config))},
             "data": ctx["prepared"].get("data", {})}
    folder = Storage(ctx["storage"])  # the sweep's folder (local or a URI); trials write under trials/
    if not cfg.train.resumable:
        folder.remove_dir("trials", trial_id)  # nothing to resume from: a restarted trial starts clean
    params = tracking.flatten(cfg.to_dict())
    log = TrialLog(runs, trial, params, started)
    try:
        if cfg.train.num_workers == 1:
            train_in_trial(cfg, ctx, log, folder, trial_id)
        else:
            build_trainer(cfg, ctx["prepared"], folder.child("trials"), trial_id, [SweepReportCallback(log)],
                          gpus_per_worker=ctx.get("gpus_per_worker"), features=ctx.get("features")).fit()
    except Exception:  # not SystemExit: Ray ends a trial the scheduler stopped that way (the driver closes its run)
        runs.fail_trial(trial_id, trial["run_name"], trial["tags"], params, traceback.format_exc(),
                        start_time_ms=int(started * 1000))
        raise
    finally:
        release_memory()
    runs.complete_trial(trial_id)
