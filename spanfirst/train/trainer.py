"""Driver side of a training run: prepare data once, start a Ray Train ``TorchTrainer``,
keep the best checkpoint."""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spanfirst.checkpoint import copy_model
from spanfirst.config import RunConfig, apply_overrides, save_config
from spanfirst.tasks import get_task
from spanfirst.train.loop import auto_threads, train_loop_per_worker
from spanfirst.train.ray_session import init_ray


class HistoryCallback:
    """Appends every epoch's rank-0 metrics to a JSON-lines file (runs in Ray's controller)."""

    def __new__(cls, path: str):
        from ray.train import UserCallback

        class _History(UserCallback):
            def after_report(self, run_context, metrics, checkpoint):  # noqa: ANN001
                if metrics:
                    with open(path, "a", encoding="utf-8") as f:
                        f.write(json.dumps(metrics[0], default=str) + "\n")

        return _History()


def build_trainer(cfg: RunConfig, prepared: dict[str, Any], storage_path: str, name: str,
                  callbacks: list[Any] | None = None, gpus_per_worker: float | None = None,
                  features: Any | None = None):
    """The ``TorchTrainer`` for one run; a multi-worker Tune trial builds the same one (with its callback).

    ``gpus_per_worker`` (sweeps): a fraction lets several trials share one GPU; default 1.
    ``features``: a sweep's :mod:`feature cache <spanfirst.train.features>` actor.
    """
    import ray.train
    from ray.train.torch import TorchConfig, TorchTrainer

    t = cfg.train
    if t.threads_per_worker == "auto":
        raise ValueError("train.threads_per_worker is 'auto': resolve it first (resolve_threads)")
    per_worker = {"CPU": t.threads_per_worker}
    if t.use_gpu:
        per_worker["GPU"] = gpus_per_worker or 1
    return TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"run_config": cfg.to_dict(), "prepared": prepared, "features": features},
        torch_config=TorchConfig(backend="nccl" if t.use_gpu else "gloo"),
        scaling_config=ray.train.ScalingConfig(num_workers=t.num_workers, use_gpu=t.use_gpu,
                                               resources_per_worker=per_worker),
        run_config=ray.train.RunConfig(
            name=name, storage_path=storage_path, callbacks=callbacks or [],
            # the newest checkpoint holding a model is the best epoch's (the loop saves a model only
            # when dev_score improves); Ray also keeps the latest one, the resume point
            checkpoint_config=ray.train.CheckpointConfig(
                num_to_keep=1, checkpoint_score_attribute="saved_model_epoch", checkpoint_score_order="max"
            ),
            # a lost worker or node: the worker group starts again from the latest checkpoint
            failure_config=ray.train.FailureConfig(max_failures=t.max_failures),
        ),
    )


def resolve_threads(cfg: RunConfig) -> RunConfig:
    """``cfg`` with ``train.threads_per_worker: auto`` replaced by a number: the CPUs of the
    largest node of the connected Ray cluster divided among ``train.num_workers`` (never more
    threads than one node has cores, however the workers are spread)."""
    if cfg.train.threads_per_worker != "auto":
        return cfg
    import ray

    cpus = max((n["Resources"].get("CPU", 0.0) for n in ray.nodes() if n.get("Alive")), default=1.0)
    return apply_overrides(cfg, {"train.threads_per_worker": auto_threads(cpus, cfg.train.num_workers)},
                           "train.threads_per_worker: auto")


@dataclass
class TrainingResult:
    best_dir: Path | None
    best_metrics: dict[str, Any]
    history: list[dict[str, Any]]


def run_training(cfg: RunConfig, address: str | None = None) -> TrainingResult:
    """Train one model; the best epoch's checkpoint ends up in ``<output_dir>/best``."""
    out = Path(cfg.train.output_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    prepared = get_task(cfg.task).prepare(cfg)  # reads and validates every file before Ray starts
    init_ray(address)
    cfg = resolve_threads(cfg)
    save_config(cfg, out / "config.yaml")
    history_file = out / "history.jsonl"
    history_file.unlink(missing_ok=True)
    # A fresh Ray run name per invocation: Ray Train restores a run's checkpoint state from an
    # existing folder of the same name, and a rerun must neither resume nor delete the old run
    # (its best checkpoint stays under ray/<name>-<time>/).
    run_name = f"{cfg.name}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    result = build_trainer(cfg, prepared, str(out / "ray"), run_name, [HistoryCallback(str(history_file))]).fit()
    history = [json.loads(line) for line in history_file.read_text(encoding="utf-8").splitlines()] \
        if history_file.exists() else []
    best_dir, best_metrics = None, {}
    models = [(c, m) for c, m in result.best_checkpoints if m.get("saved_model", 1)]
    if models:
        ckpt, best_metrics = max(models, key=lambda cm: cm[1].get("saved_model_epoch", 0))
        best_dir = out / "best"
        tmp = out / "best.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        with ckpt.as_directory() as d:
            copy_model(d, tmp)
        # Replace the previous best only once the new one is fully on disk.
        if best_dir.exists():
            shutil.rmtree(best_dir)
        tmp.rename(best_dir)
    return TrainingResult(best_dir, dict(best_metrics), history)
