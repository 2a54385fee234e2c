"""What one Tune trial runs: the project's Ray Train run (``build_trainer``), tracked in MLflow.

A trial is a function (Ray Train V2: a ``TorchTrainer`` cannot be handed to the ``Tuner``) that
applies its sampled values to the base config and fits the trainer. Its MLflow child run is the
sweep's (:class:`~spanfirst.sweep.runs.SweepRuns`): opened, or on resume found, on the first
report, closed here when the trial ends by itself. Per-epoch logging happens in
:class:`SweepReportCallback`, which runs in the Train controller and sees rank 0's metrics once
per epoch, so exactly one process logs.
"""

from __future__ import annotations

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


class SweepReportCallback(TuneReportCallback):
    """Logs each epoch to the trial's MLflow run, then forwards the metrics to Tune.

    Runs in the Train controller: ``after_report`` receives every rank's metrics and the
    checkpoint already persisted to storage. The child run is opened (or, on resume, found by
    its trial-id tag) here on the first report, not in the trial function before ``fit()``:
    importing MLflow and creating the run would otherwise add ~2 s to every trial's start.
    The run is tagged with the Ray node of the rank-0 worker (``ray.node_id``; all ranks' nodes
    in ``ray.node_ids``). Logging comes before forwarding, so a trial that ASHA stops on this very report has its last
    epoch recorded. Adds ``trial_elapsed_seconds`` (trial start -> this report) and
    ``trial_overhead_seconds`` (trial start -> first step: process and worker-group start,
    data preparation, model build).
    """

    def __init__(self, runs: SweepRuns, trial: dict[str, Any], params: dict[str, Any], trial_start: float) -> None:
        super().__init__()
        self.runs, self.trial, self.params, self.trial_start = runs, trial, params, trial_start
        self.run_id: str | None = None
        self.logged_epochs: set[int] = set()
        self.overhead: float | None = None

    def _open_run(self) -> None:
        t = self.trial
        self.run_id, self.logged_epochs = self.runs.start_trial(t["trial_id"], t["run_name"], t["tags"])
        tracking.log_params(self.runs.uri, self.run_id, self.params)
        if not self.logged_epochs:  # a new run (a restarted trial's run has its datasets)
            tracking.log_datasets(self.runs.uri, self.run_id, t.get("data", {}))

    def after_report(self, run_context, metrics: list[dict[str, Any]], checkpoint) -> None:  # noqa: ANN001
        now = time.time()
        m = dict(metrics[0])
        if self.overhead is None:
            spent = float(m.get("epoch_train_seconds", 0.0)) + float(m.get("eval_seconds", 0.0))
            self.overhead = max(0.0, now - self.trial_start - spent)
        m["trial_overhead_seconds"] = self.overhead
        m["trial_elapsed_seconds"] = now - self.trial_start
        epoch = int(m.get("epoch", 0))
        uri = self.runs.uri
        try:
            if self.run_id is None:
                self._open_run()
                nodes = [str(x.get("node_id", "")) for x in metrics]
                c = tracking.client(uri)
                c.set_tag(self.run_id, NODE_TAG, nodes[0])
                c.set_tag(self.run_id, "ray.node_ids", ",".join(sorted(set(nodes))))
            if epoch not in self.logged_epochs:
                tracking.log_metrics(uri, self.run_id, m, step=epoch)
                self.logged_epochs.add(epoch)
            if checkpoint is not None:  # on cloud storage: a temporary download
                with checkpoint.as_directory() as local:
                    tracking.log_evaluation_artifacts(uri, self.run_id, local)
                tracking.client(uri).set_tag(self.run_id, "spanfirst.checkpoint", checkpoint.path)
        except Exception:  # tracking trouble must not kill a training run; say so loudly
            print(f"spanfirst: MLflow logging failed for trial {self.trial['trial_id']}:\n{traceback.format_exc()}",
                  file=sys.stderr)
        super().after_report(run_context, [m, *metrics[1:]], checkpoint)


def run_trial(config: dict[str, Any], ctx: dict[str, Any]) -> None:
    """Tune's trainable. ``config``: sampled values by dotted path; ``ctx``: the sweep's shared state
    (base config, prepared data, the sweep's :class:`SweepRuns`, storage, seed), put in the object store once."""
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
    folder = Storage(ctx["storage"])  # the sweep's folder (local or a URI); Train runs under trials/
    folder.remove_dir("trials", trial_id)  # a restarted trial starts clean
    params = tracking.flatten(cfg.to_dict())
    callback = SweepReportCallback(runs, trial, params, started)
    trainer = build_trainer(cfg, ctx["prepared"], folder.child("trials"), trial_id, [callback],
                            gpus_per_worker=ctx.get("gpus_per_worker"))
    try:
        trainer.fit()
    except BaseException:
        runs.fail_trial(trial_id, trial["run_name"], trial["tags"], params, traceback.format_exc())
        raise
    runs.complete_trial(trial_id)
