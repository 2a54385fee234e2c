"""Evaluate a checkpoint outside training with the same task code the training loop uses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from spanfirst import checkpoint as ckpt
from spanfirst.config import apply_overrides
from spanfirst.plots import write_confusion_files
from spanfirst.tasks import get_task


def evaluate_checkpoint(checkpoint: str | Path, data: str, out: str | Path, fmt: str = "auto",
                        train: str | None = None, batch_size: int = 64) -> tuple[dict[str, float], dict[str, Any]]:
    """Write ``report.json`` (and confusion PNGs) to ``out``; return (flat metrics, report)."""
    saved, out = ckpt.read(checkpoint), Path(out)
    task_cls = get_task(saved.task)
    cfg = apply_overrides(saved.cfg, {
        "data.dev": str(Path(data).resolve()), "data.format": fmt, "data.max_dev_examples": None,
        "data.train": str(Path(train).resolve()) if train else saved.cfg.data.train,
        "train.eval_batch_size": batch_size,
    })
    if not cfg.data.train or not Path(cfg.data.train).exists():
        raise FileNotFoundError(f"training file for the baseline not found: {cfg.data.train!r}; pass --train")
    task = task_cls(cfg, task_cls.prepare_eval(cfg, saved))
    model, _tokenizer = saved.load_model(task_cls.build_from_checkpoint)
    items = task.dev_items()
    with torch.no_grad():
        preds = task.predict(model, items, list(range(len(items))))
    flat, report = task.evaluate(preds)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps({"metrics": flat, **report}, ensure_ascii=False, indent=1),
                                     encoding="utf-8")
    write_confusion_files(task_cls.confusion_matrices(cfg, saved.labels, report), out)
    return flat, report
