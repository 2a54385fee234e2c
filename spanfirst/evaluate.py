"""Evaluate a checkpoint outside training with the same task code the training loop uses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from spanfirst.config import apply_overrides, config_from_dict
from spanfirst.plots import save_confusion_png
from spanfirst.tasks import get_task, load_checkpoint


def evaluate_checkpoint(checkpoint: str | Path, data: str, out: str | Path, fmt: str = "auto",
                        train: str | None = None, batch_size: int = 64) -> tuple[dict[str, float], dict[str, Any]]:
    """Write ``report.json`` (and confusion PNGs) to ``out``; return (flat metrics, report)."""
    import yaml

    checkpoint, out = Path(checkpoint), Path(out)
    saved = config_from_dict(yaml.safe_load((checkpoint / "config.yaml").read_text(encoding="utf-8")))
    task_cls = get_task(saved.task)
    cfg = apply_overrides(saved, {
        "data.dev": str(Path(data).resolve()), "data.format": fmt, "data.max_dev_examples": None,
        "data.train": str(Path(train).resolve()) if train else saved.data.train,
        "train.eval_batch_size": batch_size,
    })
    if not cfg.data.train or not Path(cfg.data.train).exists():
        raise FileNotFoundError(f"training file for the baseline not found: {cfg.data.train!r}; pass --train")
    labels = json.loads((checkpoint / "labels.json").read_text(encoding="utf-8"))
    prepared = task_cls.prepare_eval(cfg, labels, str(checkpoint / "backbone"))
    task = task_cls(cfg, prepared)
    model, _tok, _cfg, _labels = load_checkpoint(checkpoint, task_cls.build_from_checkpoint)
    items = task.dev_items()
    with torch.no_grad():
        preds = task.predict(model, items, list(range(len(items))))
    flat, report = task.evaluate(preds)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps({"metrics": flat, **report}, ensure_ascii=False, indent=1),
                                     encoding="utf-8")
    for name, (matrix, names) in task.confusion_matrices(report).items():
        (out / f"{name}.json").write_text(json.dumps({"labels": names, "matrix": matrix}, ensure_ascii=False),
                                          encoding="utf-8")
        save_confusion_png(matrix, names, out / f"{name}.png", name.replace("_", " "))
    return flat, report
