"""``pipelines/benchmark.py span-first``: what each change to span-first's candidates and scoring is
worth, step by step from the design's settings to the shipped defaults, beside GlobalPointer and
the precision-filtered dictionary floor (KLUE-NER, tiny backbone, the heads benchmark's recipe)."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from benchmarks import heads
from benchmarks.report import table
from spanfirst.config import apply_overrides

DESIGN = {"ner.length_bins": [[1, 1], [2, 2], [3, 4], [5, 6]], "ner.representative_lengths": [1, 2, 3, 6],
          "ner.expand": "representative", "ner.span_representation": "mean", "ner.score_threshold": 0.2,
          "ner.top_k.k_min": 4, "ner.top_k.k_max": 12, "ner.top_k.alpha": 0.12, "ner.start_focal_alpha": 0.25,
          "ner.hard_negatives": 2}
FITTED = {**DESIGN, "ner.length_bins": "auto", "ner.representative_lengths": "auto", "ner.expand": "all",
          "ner.score_threshold": "auto"}
# label -> (model.head, overrides); each span-first row adds one change to the row above it
STEPS: dict[str, tuple[str, dict[str, Any]]] = {
    "span-first, the design's settings": ("span_first", DESIGN),
    "+ bins fitted to the data, every length, threshold calibrated on dev": ("span_first", FITTED),
    "+ endpoint span representation": ("span_first", {**FITTED, "ner.span_representation": "endpoints"}),
    "+ all candidates as negatives, 2x start candidates, focal alpha 0.5": (
        "span_first", {"ner.span_representation": "endpoints"}),
    "+ a per-type query.key pointer on the endpoints": ("span_first", {"ner.type_decision": "softmax"}),
    "+ multilabel type decision (per-type sigmoid, GlobalPointer's loss on the candidates)": (
        "span_first", {"ner.type_decision": "multilabel"}),
    "GlobalPointer": ("global_pointer", {}),
}


def run(data_dir: Path, out: Path, epochs: int = 4, seeds: tuple[int, ...] = (0, 1, 2),
        train_examples: int = 2000) -> str:
    cfg = heads.base_config(data_dir, out, epochs)
    cfg = apply_overrides(cfg, {"name": "bench-span-first", "train.early_stopping_patience": 0,
                                "data.max_train_examples": train_examples})
    rows = []
    for label, (head, overrides) in STEPS.items():
        runs = []
        for seed in seeds:
            run_cfg = apply_overrides(cfg, {**overrides, "model.head": head, "train.seed": seed,
                                            "train.output_dir": str(out / f"{head}-{len(rows)}-seed{seed}")})
            res = heads.reuse_or_train(run_cfg)
            report = json.loads((Path(res.best_dir) / "metrics.json").read_text(encoding="utf-8"))["report"]
            runs.append(report)
            print(f"[span-first] {label} seed {seed}: strict F1 {report['strict']['f1']:.3f}", flush=True)
        f1 = [r["strict"]["f1"] for r in runs]
        first = runs[0]
        rows.append([label, heads.mean_spread(f1), first.get("candidate_recall_ceiling", "-"),
                     first.get("candidate_recall", "-"), first.get("candidates_per_sentence", "-"),
                     statistics.mean(r["dictionary_baseline"]["strict"]["f1"] for r in runs)])
    header = ["model", "dev strict F1", "recall ceiling", "candidate recall", "candidates / sentence",
              "filtered dictionary floor"]
    return ("## Span-first step by step (issue 13)\n\n"
            f"KLUE-NER, the first {train_examples} train sentences / all 500 dev sentences, tiny offline "
            f"backbone, the quickstart recipe, {epochs} epochs, best epoch kept, seeds {list(seeds)}; recall "
            "figures from the first seed. Regenerate with `python pipelines/benchmark.py span-first`.\n\n"
            + table(header, rows))
