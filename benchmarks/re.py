"""Relation extraction on KLUE-RE with the tiny backbone: dev micro F1 and AUPRC for each
representation choice next to the type-pair baseline, training time per epoch, inference rows
per second."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import torch

from benchmarks.report import table
from spanfirst.config import RunConfig, apply_overrides, load_config
from spanfirst.re.predictor import RePredictor
from spanfirst.re.reader import read_re
from spanfirst.train.trainer import run_training

REPO = Path(__file__).resolve().parents[1]

# (marker style, pooling, use [CLS]) — pooling choices under typed markers, then marker styles
VARIANTS = [
    ("typed_entity", "cls", False),
    ("typed_entity", "marker", False),
    ("typed_entity", "mean", True),
    ("typed_entity", "attention", True),
    ("none", "mean", True),
    ("entity", "mean", True),
    ("typed_punct", "mean", True),
]


def base_config(data_dir: Path, out: Path, epochs: int) -> RunConfig:
    cfg = load_config(REPO / "spanfirst" / "configs" / "quickstart_re.yaml")
    return apply_overrides(cfg, {
        "name": "bench-re",
        "data.train": str(data_dir / "klue-re" / "klue-re-train.csv"),
        "data.dev": str(data_dir / "klue-re" / "klue-re-dev.csv"),
        "data.relation_list": str(data_dir / "klue-re" / "relation_list.json"),
        "train.epochs": epochs, "train.output_dir": str(out),
    })


def rows_per_second(checkpoint: Path, dev_path: str, batch_size: int = 64) -> float:
    torch.set_num_threads(2)
    pred = RePredictor.load(checkpoint)
    examples = read_re(dev_path, require_label=False).examples
    pred.predict_proba(examples[:batch_size], batch_size)  # warm-up
    best = float("inf")
    for _ in range(2):
        t0 = time.perf_counter()
        pred.predict_proba(examples, batch_size)
        best = min(best, time.perf_counter() - t0)
    return len(examples) / best


def run(data_dir: Path, out: Path, epochs: int = 10) -> str:
    cfg = base_config(data_dir, out, epochs)
    rows, speed = [], 0.0
    for style, pooling, use_cls in VARIANTS:
        name = f"{style}-{pooling}{'-cls' if use_cls else ''}"
        run_cfg = apply_overrides(cfg, {"re.marker_style": style, "re.pooling": pooling, "re.use_cls": use_cls,
                                        "train.output_dir": str(out / name)})
        res = run_training(run_cfg)
        best = res.best_metrics
        rows.append([style, pooling + (" + [CLS]" if use_cls else ""), best["dev_micro_f1"], best["dev_auprc"],
                     best["dev_baseline_micro_f1"], best["dev_micro_f1"] / max(best["dev_baseline_micro_f1"], 1e-9),
                     best["epoch"], statistics.mean(h["epoch_train_seconds"] for h in res.history)])
        if not speed:
            speed = rows_per_second(res.best_dir, cfg.data.dev)
    lines = [
        "## Relation extraction (issue 3)",
        "",
        f"KLUE-RE, {cfg.data.train.rsplit('/', 1)[-1]} / {cfg.data.dev.rsplit('/', 1)[-1]}, 30 labels, tiny offline "
        f"backbone (randomly initialised, {cfg.model.tiny.num_layers} layers, hidden {cfg.model.tiny.hidden_size}), "
        f"2 Ray Train workers on 2 CPU cores, {epochs} epochs, lr {cfg.train.lr_backbone:g}/{cfg.train.lr_heads:g}. "
        "Regenerate with `python pipelines/benchmark.py re`.",
        "",
        "Dev micro F1 (no_relation excluded) and AUPRC of the best epoch, beside the type-pair baseline "
        "(the most frequent relation of each subject/object type pair in training):",
        "",
        table(["markers", "pooling", "dev micro F1", "dev AUPRC", "baseline micro F1", "ratio to baseline",
               "best epoch", "train s/epoch"], rows),
        "",
        f"Inference (RePredictor, batch 64, 2 threads, first variant, best of 2 passes over dev): "
        f"{speed:.1f} rows / second.",
    ]
    return "\n".join(lines)
