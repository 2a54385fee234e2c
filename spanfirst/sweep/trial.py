"""What one Tune trial runs: the project's training loop, tracked in MLflow.

A trial is a function (Ray Train V2: a ``TorchTrainer`` cannot be handed to the ``Tuner``) that
applies its sampled values to the base config and trains: a single-worker trial runs the training
loop in its own process (:func:`train_in_trial`), a multi-worker one fits the Ray Train job
(DDP). Its MLflow child run is the sweep's (:class:`~spanfirst.sweep.runs.SweepRuns`): opened, or
on resume found, on the first report, closed here when the trial ends by itself; per-epoch logging
is :class:`TrialLog`'s, fed with rank 0's metrics once per epoch, so exactly one process logs.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from typing import Any

# A Ray DeveloperAPI (Train V2 -> Tune); its ``after_report`` signature is checked in spanfirst.compat's notes.
from ray.tune.integration.ray_train import TuneReportCallback

from spanfirst import tracking
from spanfirst.sweep.runs import SweepRuns
from spanfirst.sweep.storage import Storage

NODE_TAG = "ray.node_id"  # where the trial's rank-0 Train worker ran (the loop reports ``node_id``)


def trial_index(trial_id: str) -> int:
    """Tune trial ids end in a zero-padded running number: ``a1b2c_00003`` -> 3."""
    tail = trial_id.rsplit("_", 1)[-1]
    return int(tail) if tail.isdigit() else 0


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
        self.logged_epochs: set[int] = set()
        self.overhead: float | None = None
        # The trial's process, for the sweep's start-up measure (spanfirst.sweep.summary.startups):
        # a reused process serves several trials one after another.
        self.process = {"trial_pid": os.getpid(), "trial_process_started_at": psutil.Process().create_time()}

    def _open_run(self, nodes: list[str]) -> None:
        t = self.trial
        self.run_id, self.logged_epochs = self.runs.start_trial(t["trial_id"], t["run_name"], t["tags"],
                                                                start_time_ms=int(self.trial_start * 1000))
        tracking.log_params(self.runs.uri, self.run_id, self.params)
        if not self.logged_epochs:  # a new run (a restarted trial's run has its datasets)
            tracking.log_datasets(self.runs.uri, self.run_id, t.get("data", {}))
        c = tracking.client(self.runs.uri)
        c.set_tag(self.run_id, NODE_TAG, nodes[0])
        c.set_tag(self.run_id, "ray.node_ids", ",".join(sorted(set(nodes))))

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
                self._open_run([str(x.get("node_id", "")) for x in metrics])
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
        if checkpoint is not None:  # on cloud storage: a temporary download
            with checkpoint.as_directory() as local:
                m = self.log.record(metrics, local, checkpoint.path)
        else:
            m = self.log.record(metrics, None, None)
        super().after_report(run_context, [m, *metrics[1:]], checkpoint)


def train_in_trial(cfg: Any, ctx: dict[str, Any], log: TrialLog, folder: Storage, trial_id: str) -> None:
    """A single-worker trial trains in the trial's own process: the same loop (``run_epochs``), no
    Train controller or worker group to start. Checkpoints go where Ray Train would put them
    (``trials/<trial id>/checkpoint_epoch_NNN`` in the sweep's storage), only the best one kept,
    written under a temporary name first, so the folder never holds a partial checkpoint."""
    import ray
    import torch
    from ray import tune

    from spanfirst.train.features import build_task
    from spanfirst.train.loop import run_epochs, setup_process

    setup_process(cfg)
    device = torch.device("cuda:0" if cfg.train.use_gpu and torch.cuda.is_available() else "cpu")
    task = build_task(cfg, ctx["prepared"], ctx.get("features"))
    node_id = ray.get_runtime_context().get_node_id()
    kept: list[str] = []

    def report(metrics: dict[str, Any], ckpt_dir: str | None) -> None:
        m = {**metrics, "node_id": node_id}
        path = None
        if ckpt_dir is not None:
            path = folder.upload_dir(ckpt_dir, "trials", trial_id, f"checkpoint_epoch_{int(m['epoch']):03d}")
            m["checkpoint_path"] = path
        m = log.record([m], ckpt_dir, path)
        if path is not None:
            for old in kept:
                folder.remove_fs_dir(old)
            kept[:] = [path]
        tune.report(m)

    run_epochs(task, cfg, 0, 1, device, report)


def run_trial(config: dict[str, Any], ctx: dict[str, Any]) -> None:
    """Tune's trainable. ``config``: sampled values by dotted path; ``ctx``: the sweep's shared state
    (base config, prepared data, the feature cache, the sweep's :class:`SweepRuns`, storage, seed),
    put in the object store once."""
    started = time.time()
    from ray import tune

    from spanfirst.config import apply_overrides, config_from_dict
    from spanfirst.train.trainer import build_trainer

    trial_id = tune.get_context().get_trial_id()
    seed = trial_seed(ctx["seed"], trial_index(trial_id))
    cfg = apply_overrides(config_from_dict(ctx["base"], "sweep base config"), {**config, "train.seed": seed},
                          f"trial {trial_id}")
    runs: SweepRuns = ctx["runs"]
    trial = {"trial_id": trial_id, "run_name": f"trial-{trial_index(trial_id):03d}",
             "tags": {"spanfirst.sweep": ctx["sweep_name"], "spanfirst.task": cfg.task,
                      "spanfirst.sampled": ",".join(sorted(config))},
             "data": ctx["prepared"].get("data", {})}
    folder = Storage(ctx["storage"])  # the sweep's folder (local or a URI); trials write under trials/
    folder.remove_dir("trials", trial_id)  # a restarted trial starts clean
    params = tracking.flatten(cfg.to_dict())
    log = TrialLog(runs, trial, params, started)
    try:
        if cfg.train.num_workers == 1:
            train_in_trial(cfg, ctx, log, folder, trial_id)
        else:
            build_trainer(cfg, ctx["prepared"], folder.child("trials"), trial_id, [SweepReportCallback(log)],
                          gpus_per_worker=ctx.get("gpus_per_worker"), features=ctx.get("features")).fit()
    except BaseException:
        runs.fail_trial(trial_id, trial["run_name"], trial["tags"], params, traceback.format_exc(),
                        start_time_ms=int(started * 1000))
        raise
    runs.complete_trial(trial_id)
