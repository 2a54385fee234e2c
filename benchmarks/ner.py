"""Span-first NER on KLUE-NER with the tiny backbone: quality next to the dictionary baseline,
training time per epoch by worker layout, inference throughput next to the bare encoder,
peak memory, candidate recall and its ceiling."""

from __future__ import annotations

import json
import platform
import resource
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.report import table
from spanfirst.config import RunConfig, apply_overrides, load_config
from spanfirst.data.alignment import AlignedExample, encode
from spanfirst.data.readers import read_ner
from spanfirst.ner.features import collate
from spanfirst.ner.heads.common import encode_text
from spanfirst.ner.predictor import NerPredictor
from spanfirst.tasks import to_device
from spanfirst.train.trainer import TrainingResult, run_training

REPO = Path(__file__).resolve().parents[1]


def base_config(data_dir: Path, out: Path, epochs: int) -> RunConfig:
    cfg = load_config(REPO / "spanfirst" / "configs" / "quickstart_ner.yaml")
    return apply_overrides(cfg, {
        "name": "bench-ner",
        "data.train": str(data_dir / "klue-ner" / "klue-ner-train.tsv"),
        "data.dev": str(data_dir / "klue-ner" / "klue-ner-dev.tsv"),
        "train.epochs": epochs, "train.output_dir": str(out),
    })


def time_layouts(cfg: RunConfig, out: Path, layouts: list[tuple[int, int]], epochs: int) -> list[dict[str, Any]]:
    """Mean train seconds per epoch for each (workers, threads per worker) layout."""
    rows = []
    for workers, threads in layouts:
        run = apply_overrides(cfg, {
            "train.num_workers": workers, "train.threads_per_worker": threads, "train.epochs": epochs,
            "train.early_stopping_patience": 0, "train.output_dir": str(out / f"layout-{workers}x{threads}"),
        })
        res = run_training(run)
        secs = [h["epoch_train_seconds"] for h in res.history]
        rows.append({"workers": workers, "threads": threads, "epoch_seconds": statistics.mean(secs),
                     "peak_rss_mb": max(h["peak_rss_mb"] for h in res.history)})
    return rows


def inference_speed(checkpoint: Path, texts: list[str], batch_size: int = 64, repeats: int = 3) -> dict[str, float]:
    """Sentences per second of the full predictor vs the bare encoder forward on the same batches."""
    torch.set_num_threads(2)
    pred = NerPredictor.load(checkpoint)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    pred.predict(texts[:batch_size], batch_size)  # warm-up
    full = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        pred.predict(texts, batch_size)
        full.append(time.perf_counter() - t0)
    items = [AlignedExample(e) for e in encode(pred.tokenizer, texts, pred.cfg.model.max_length)]
    items.sort(key=lambda it: len(it.enc.input_ids))
    batches = [to_device(collate(items[i : i + batch_size], pred.tokenizer.pad_token_id), "cpu")
               for i in range(0, len(items), batch_size)]
    bare = []
    with torch.no_grad():
        for _ in range(repeats):
            t0 = time.perf_counter()
            for b in batches:
                encode_text(pred.model.encoder, b["input_ids"], b["attention_mask"])
            bare.append(time.perf_counter() - t0)
    return {
        "sentences_per_second": len(texts) / min(full),
        "encoder_only_sentences_per_second": len(texts) / min(bare),
        "predictor_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "predictor_rss_before_mb": rss_before,
    }


def finished_run(out: Path) -> bool:
    """Whether a training run finished in ``out`` (its best checkpoint's metrics and its history)."""
    return (out / "best" / "metrics.json").is_file() and (out / "history.jsonl").is_file()


def reuse_or_train(cfg: RunConfig) -> TrainingResult:
    """The quality run, reused from ``--workdir`` when it finished before (timing-only reruns)."""
    out = Path(cfg.train.output_dir)
    history = out / "history.jsonl"
    if finished_run(out):
        metrics = json.loads((out / "best" / "metrics.json").read_text(encoding="utf-8"))
        metrics.pop("report", None)
        rows = [json.loads(line) for line in history.read_text(encoding="utf-8").splitlines()]
        return TrainingResult(out / "best", metrics, rows)
    return run_training(cfg)


def run(data_dir: Path, out: Path, epochs: int = 10, timing_epochs: int = 2) -> str:
    """Run everything and return the markdown section."""
    cfg = base_config(data_dir, out, epochs)
    quality = reuse_or_train(apply_overrides(cfg, {"train.output_dir": str(out / "quality")}))
    best = quality.best_metrics
    dev_texts = [e.text for e in read_ner(cfg.data.dev)]
    speed = inference_speed(quality.best_dir, dev_texts)
    layouts = time_layouts(cfg, out, [(1, 1), (1, 2), (2, 1)], timing_epochs)
    base_secs = layouts[0]["epoch_seconds"]

    full = json.loads((quality.best_dir / "metrics.json").read_text(encoding="utf-8"))["report"]
    per_type = full["strict"]["per_type"]
    base_per_type = full["dictionary_baseline"]["strict"]["per_type"]
    lines = [
        "## Span-first NER (issue 2)",
        "",
        f"KLUE-NER, {len(dev_texts)} dev sentences, tiny offline backbone "
        f"({cfg.model.tiny.num_layers} layers, hidden {cfg.model.tiny.hidden_size}, randomly initialised, tokenizer "
        f"trained on the train texts), {platform.machine()} CPU, 2 cores. Regenerate with "
        "`python pipelines/benchmark.py ner` (about 15 minutes; "
        "with `--workdir DIR` a finished quality run is reused and only the timings rerun).",
        "",
        f"Quality run: 2 workers, up to {epochs} epochs (early stopping patience "
        f"{cfg.train.early_stopping_patience}), best epoch {best.get('epoch')} of {len(quality.history)}.",
        "",
        table(["metric", "span-first", "dictionary baseline", "ratio"], [
            ["dev strict F1", best["dev_strict_f1"], best["dev_baseline_strict_f1"],
             best["dev_strict_f1"] / max(best["dev_baseline_strict_f1"], 1e-9)],
            ["dev strict precision", best["dev_strict_precision"], full["dictionary_baseline"]["strict"]["precision"], ""],
            ["dev strict recall", best["dev_strict_recall"], full["dictionary_baseline"]["strict"]["recall"], ""],
            ["dev lenient F1 (±1 token)", best["dev_lenient_f1"], "", ""],
        ]),
        "",
        table(["type", "F1", "baseline F1", "support"], [
            [t, v["f1"], base_per_type.get(t, {}).get("f1", 0.0), v["support"]] for t, v in sorted(per_type.items())
        ]),
        "",
        table(["candidate diagnostic", "value"], [
            ["candidates per sentence", best["dev_candidates_per_sentence"]],
            ["candidate recall (gold spans among the model's candidates)", best["dev_candidate_recall"]],
            ["candidate recall ceiling (gold lengths the bins' representative lengths reach)",
             full["candidate_recall_ceiling"]],
            ["NMS output overlap rate", best["dev_nms_overlap_rate"]],
            ["dev entities lost to max_length / unalignable / boundary inside a token",
             f"{full['alignment']['dev']['truncated']} / {full['alignment']['dev']['unalignable']} / "
             f"{full['alignment']['dev']['boundary_mismatch']} of {full['alignment']['dev']['entities']}"],
        ]),
        "",
        "Training time per epoch by worker layout (same data, "
        f"{timing_epochs} epochs each; ratio to 1 worker x 1 thread):",
        "",
        table(["workers x threads", "train s/epoch", "ratio", "peak RSS per worker (MB)"], [
            [f"{r['workers']} x {r['threads']}", r["epoch_seconds"], r["epoch_seconds"] / base_secs, r["peak_rss_mb"]]
            for r in layouts
        ]),
        "",
        "Inference (NerPredictor, batch 64, 2 threads, best of 3 passes over dev):",
        "",
        table(["measure", "value"], [
            ["sentences / second, full predictor", speed["sentences_per_second"]],
            ["sentences / second, encoder forward only", speed["encoder_only_sentences_per_second"]],
            ["heads + candidates + NMS cost (encoder-only / full)",
             speed["encoder_only_sentences_per_second"] / speed["sentences_per_second"]],
            ["predictor process peak RSS (MB)", speed["predictor_peak_rss_mb"]],
        ]),
    ]
    return "\n".join(lines)
