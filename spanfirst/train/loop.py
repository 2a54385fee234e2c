"""The one training loop, run by every Ray Train worker (and by every Tune trial).

Per epoch: train on this worker's shard (DDP: gloo on CPU, NCCL on GPU), predict this
worker's shard of dev, gather the predictions so every rank computes identical metrics
(and so takes identical early-stopping decisions), then report; rank 0 alone writes the
checkpoint, and only when the dev metric improved, so the kept checkpoint is the best epoch's.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from spanfirst.config import RunConfig, config_from_dict
from spanfirst import checkpoint as ckpt
from spanfirst.train.progress import Progress
from spanfirst.tasks import Task, to_device


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def param_groups(model: nn.Module, cfg: RunConfig) -> list[dict[str, Any]]:
    """AdamW groups: backbone vs heads learning rates; no decay on biases and norms."""
    groups: dict[tuple[str, bool], list[nn.Parameter]] = {}
    for name, p in model.named_parameters():
        part = "backbone" if name.startswith("encoder.") else "heads"
        no_decay = p.ndim < 2 or "norm" in name.lower()
        groups.setdefault((part, no_decay), []).append(p)
    t = cfg.train
    return [
        {"params": ps, "lr": t.lr_backbone if part == "backbone" else t.lr_heads,
         "weight_decay": 0.0 if no_decay else t.weight_decay, "name": f"{part}{'_nodecay' if no_decay else ''}"}
        for (part, no_decay), ps in groups.items()
    ]


def set_backbone_trainable(model: nn.Module, trainable: bool, lora: bool) -> None:
    """Stage switch of the two-stage recipe; with LoRA only the adapters (and modules peft
    was told to save whole, such as resized embeddings, and the added rows of frozen word
    embeddings) ever train."""
    from spanfirst.backbone import AddedRowsEmbedding

    added = {id(p) for m in model.encoder.modules() if isinstance(m, AddedRowsEmbedding) for p in m.parameters()}
    for name, p in model.encoder.named_parameters():
        p.requires_grad = trainable and (not lora or "lora_" in name or "modules_to_save" in name or id(p) in added)


def autocast(cfg: RunConfig, device: torch.device):
    if cfg.train.precision == "fp32" or device.type != "cuda":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if cfg.train.precision == "bf16" else torch.float16
    return torch.autocast(device_type="cuda", dtype=dtype)


def _wrap(model: nn.Module, world: int, device: torch.device) -> nn.Module:
    if world == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def _gather(obj: list[Any], world: int) -> list[Any]:
    if world == 1:
        return obj
    import torch.distributed as dist

    parts: list[Any] = [None] * world
    dist.all_gather_object(parts, obj)
    return [x for part in parts for x in part]


def epoch_shard(n: int, rank: int, world: int, seed: int) -> list[int]:
    """This rank's item indices for one epoch: a seeded shuffle dealt round-robin.

    Every rank gets the same number of items (as DistributedSampler: the shuffle is padded with
    its first items): a rank with one batch more would wait forever in DDP's collective ops."""
    order = list(range(n))
    random.Random(seed).shuffle(order)
    per_rank = math.ceil(n / world)
    return (order * world)[: per_rank * world][rank::world]


GROUP_BATCHES = 50  # group_by_length sorts runs of this many batches' worth of the shuffle


def epoch_batches(shard: list[int], batch_size: int, lengths: list[int] | None, seed: int) -> list[list[int]]:
    """This rank's batches for one epoch, as item indices: the shard in order, or with ``lengths``
    (``train.group_by_length``) each run of ``GROUP_BATCHES`` batches' worth of the shard sorted by
    length (longest first) and cut into batches, whose order is then shuffled. The batch count is
    the same either way, so every rank still steps the same number of times."""
    if lengths is None:
        return [shard[lo : lo + batch_size] for lo in range(0, len(shard), batch_size)]
    run = batch_size * GROUP_BATCHES
    batches: list[list[int]] = []
    for lo in range(0, len(shard), run):
        part = sorted(shard[lo : lo + run], key=lambda i: -lengths[i])
        batches += [part[k : k + batch_size] for k in range(0, len(part), batch_size)]
    random.Random(seed).shuffle(batches)
    return batches


def rng_state() -> dict[str, Any]:
    """Every random generator the loop draws from, as tensors and plain values (no pickled objects)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {"torch": torch.get_rng_state(), "python": random.getstate(),
            "numpy": [name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def run_epochs(task: Task, cfg: RunConfig, rank: int, world: int, device: torch.device, report,
               resume: str | Path | None = None) -> None:
    """Train for ``cfg.train.epochs`` (or until early stopping), calling ``report(metrics, ckpt_dir)``.

    ``ckpt_dir`` holds the model when the dev score improved (``saved_model`` = 1 in the metrics)
    and, when the run may be restarted (``train.max_failures`` > 0 or ``train.save_training_state``),
    the training state every
    epoch. ``resume``: a folder with such a training state; training continues after its epoch."""
    t = cfg.train
    seed_everything(t.seed)
    model = task.build_model().to(device)
    train_items, dev_items = task.train_items(), task.dev_items()
    lora = cfg.model.lora.enabled
    optimizer = torch.optim.AdamW(param_groups(model, cfg), lr=t.lr_heads)
    steps_per_epoch = math.ceil(math.ceil(len(train_items) / world) / t.batch_size)
    total = steps_per_epoch * t.epochs
    from transformers import get_scheduler

    scheduler = get_scheduler(t.scheduler, optimizer, num_warmup_steps=int(t.warmup_ratio * total),
                              num_training_steps=total)
    scaler = torch.amp.GradScaler("cuda") if t.precision == "fp16" and device.type == "cuda" else None
    best, stale, stage_frozen, wrapped = -math.inf, 0, None, model
    resumable, first_epoch = t.resumable, 1
    if resume is not None:
        state = ckpt.read_training_state(resume)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"])
        best, stale, first_epoch = float(state["best"]), int(state["stale"]), int(state["epoch"]) + 1
        if rank == 0 and t.progress:
            print(f"resuming after epoch {state['epoch']} (best dev_score so far {best:.4f})", flush=True)
    dev_idx = list(range(rank, len(dev_items), world))
    lengths = task.item_lengths(train_items) if t.group_by_length else None
    progress = Progress(t.epochs, steps_per_epoch, rank, enabled=t.progress)
    first_step_at: float | None = None  # wall clock: sweeps measure a trial's start-up up to here
    for epoch in range(first_epoch, t.epochs + 1):
        frozen = epoch <= t.freeze_backbone_epochs
        if frozen != stage_frozen:  # (re)wrap: DDP registers the parameters that need grads
            set_backbone_trainable(model, not frozen, lora)
            wrapped, stage_frozen = _wrap(model, world, device), frozen
        started = time.perf_counter()
        progress.start_epoch(epoch)
        shard = epoch_shard(len(train_items), rank, world, t.seed + epoch)
        wrapped.train()
        loss_sum, n_steps = 0.0, 0
        for indices in epoch_batches(shard, t.batch_size, lengths, t.seed + epoch):
            if first_step_at is None:
                first_step_at = time.time()
            batch = task.collate([train_items[i] for i in indices])
            batch = to_device(batch, device)
            with autocast(cfg, device):
                loss = task.loss(wrapped, batch)
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
            else:
                loss.backward()
            if t.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], t.grad_clip)
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            scheduler.step()
            loss_sum += float(loss.detach())
            n_steps += 1
            progress.step(n_steps, len(indices) * world)
        train_seconds = time.perf_counter() - started
        eval_started = time.perf_counter()
        with torch.no_grad(), autocast(cfg, device):
            preds = task.predict(model, [dev_items[i] for i in dev_idx], dev_idx)
        preds = _gather(preds, world)
        flat, full = task.evaluate(preds) if dev_items else ({task.main_metric: -loss_sum}, {})
        metrics = {f"dev_{k}": v for k, v in flat.items()}
        score = flat[task.main_metric]
        metrics.update({
            "epoch": epoch, "train_loss": loss_sum / max(n_steps, 1), "dev_score": score,
            "epoch_train_seconds": train_seconds, "eval_seconds": time.perf_counter() - eval_started,
            "backbone_frozen": int(frozen),
            "peak_rss_mb": _peak_rss_mb(),
            "first_step_at": first_step_at if first_step_at is not None else time.time(),
        })
        improved = score > best
        if improved:
            best, stale = score, 0
        else:
            stale += 1
        metrics["best_dev_score"] = best
        # which checkpoint holds a model: Ray keeps the newest of those (the best) and the latest one
        metrics["saved_model"], metrics["saved_model_epoch"] = int(improved), epoch if improved else 0
        progress.end_epoch(metrics["train_loss"], score)
        if rank == 0 and (improved or resumable):
            with tempfile.TemporaryDirectory(prefix="spanfirst-ckpt-") as tmp:
                if improved:
                    ckpt.save(model, task.tokenizer, task.checkpoint_config(), task.label_info(), Path(tmp),
                              metrics={**metrics, "report": full})
                if resumable:
                    ckpt.save_training_state(tmp, model, {
                        "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                        "scaler": scaler.state_dict() if scaler is not None else {}, "rng": rng_state(),
                        "epoch": epoch, "best": best, "stale": stale})
                report(metrics, tmp)
        else:
            report(metrics, None)
        if t.early_stopping_patience and stale >= t.early_stopping_patience:
            break


def _peak_rss_mb() -> float:
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


def auto_threads(node_cpus: float, workers: int) -> int:
    """``train.threads_per_worker: auto``: a node's CPUs divided among the run's workers (at least 1)."""
    return max(1, int(node_cpus) // max(workers, 1))


def setup_process(cfg: RunConfig) -> None:
    """What every process that trains sets once: quiet transformers and Ray Train's per-report
    dumps (the progress lines replace them), this run's thread count."""
    import transformers

    from spanfirst.compat import quiet_ray_train_reports

    quiet_ray_train_reports()

    transformers.logging.set_verbosity_error()  # per-worker weight-loading reports and bars
    transformers.logging.disable_progress_bar()
    threads = cfg.train.threads_per_worker
    if threads == "auto":  # (a run resolves it before its workers start; a bare call gets this machine's share)
        threads = auto_threads(os.cpu_count() or 1, cfg.train.num_workers)
    torch.set_num_threads(threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def train_loop_per_worker(loop_config: dict[str, Any]) -> None:
    """Entry point Ray Train runs on every worker (``features``: a sweep's feature cache actor)."""
    import ray
    import ray.train
    import ray.train.torch
    from ray.train import Checkpoint

    from spanfirst.train.features import build_task

    cfg = config_from_dict(loop_config["run_config"], "run config")
    setup_process(cfg)
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    device = ray.train.torch.get_device()
    task = build_task(cfg, loop_config["prepared"], loop_config.get("features"))

    node_id = ray.get_runtime_context().get_node_id()  # which node trained: sweeps tag their runs with it

    def report(metrics: dict[str, Any], ckpt_dir: str | None) -> None:
        checkpoint = Checkpoint.from_directory(ckpt_dir) if ckpt_dir else None
        ray.train.report({**metrics, "node_id": node_id}, checkpoint=checkpoint)

    # After a lost worker (or a restarted trial) Ray Train hands every rank the latest checkpoint.
    latest = ray.train.get_checkpoint() if cfg.train.resumable else None
    if latest is not None:
        with latest.as_directory() as folder:
            if ckpt.has_training_state(folder):
                run_epochs(task, cfg, rank, world, device, report, resume=folder)
                return
    run_epochs(task, cfg, rank, world, device, report)
