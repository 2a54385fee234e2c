"""``pipelines/benchmark.py re-klue``: relation-extraction recipes on KLUE-RE with a pretrained
multilingual encoder (multilingual-e5-small, the ``bench`` extra; see :mod:`benchmarks.encoders`).

All 4,500 training rows, all 1,000 dev rows (the best epoch is chosen there); each recipe changes
one thing of the design's recipe (typed punctuation markers, marker pooling, focal loss, label
smoothing) and trains once per seed. Micro F1 without ``no_relation`` and AUPRC on dev, the
type-pair floor beside them (the most frequent relation of each subject/object type pair).
``re-klue-analysis`` (one seed) measures what the issue asked of a model that trails that floor:
training data, epochs, learning rates, the marker style and class imbalance.
"""

from __future__ import annotations

import os
import statistics
from pathlib import Path
from typing import Any

from benchmarks.encoders import E5_NAME, E5_SHAPE, multilingual_e5_small
from benchmarks.heads import mean_spread
from benchmarks.ner import finished_run, reuse_or_train
from benchmarks.report import table
from spanfirst.config import ReRunConfig, apply_overrides, load_config

REPO = Path(__file__).resolve().parents[1]
DESIGN = {"re.marker_style": "typed_punct", "re.pooling": "marker", "re.use_cls": False, "re.focal_gamma": 2.0,
          "re.label_smoothing": 0.1, "re.type_prior": False}
# label -> overrides of the design's recipe
RECIPES: dict[str, dict[str, Any]] = {
    "the design: typed punctuation markers, marker pooling, focal loss (gamma 2), label smoothing 0.1": DESIGN,
    "entity markers ([E1] ... [/E1], added tokens)": {**DESIGN, "re.marker_style": "entity"},
    "[CLS] pooling": {**DESIGN, "re.pooling": "cls"},
    "mean pooling + [CLS]": {**DESIGN, "re.pooling": "mean", "re.use_cls": True},
    "attention pooling + [CLS]": {**DESIGN, "re.pooling": "attention", "re.use_cls": True},
    "the design + the type-pair prior (re.type_prior)": {**DESIGN, "re.type_prior": True},
}
SEEDS = (0, 1, 2)
EPOCHS = 5
# re-klue-analysis: (what is measured, the run's label, overrides of the design's recipe); seed 0
ANALYSIS: list[tuple[str, str, dict[str, Any]]] = [
    ("baseline", "the design's recipe, all 4,500 rows", DESIGN),
    ("type pair", "the type-pair prior (re.type_prior)", {**DESIGN, "re.type_prior": True}),
    ("class imbalance", "plain cross-entropy (no focal loss, no smoothing)",
     {**DESIGN, "re.focal_gamma": 0.0, "re.label_smoothing": 0.0}),
    ("class imbalance", "inverse-log-frequency class weights", {**DESIGN, "re.class_weights": "auto"}),
    ("training data", "the first 2,000 rows", {**DESIGN, "data.max_train_examples": 2000}),
    ("head learning rate", "lr_heads 5e-3", {**DESIGN, "train.lr_heads": 5e-3}),
    ("backbone learning rate", "lr_backbone 2e-4", {**DESIGN, "train.lr_backbone": 2e-4}),
    ("marker style", "typed special-token markers ([E1-ORG] ...)", {**DESIGN, "re.marker_style": "typed_entity"}),
]


def base_config(data_dir: Path, encoder: Path, out: Path, epochs: int) -> ReRunConfig:
    cfg = load_config(REPO / "spanfirst" / "configs" / "klue_re_e5_small.yaml")
    re_dir = data_dir / "klue-re"
    return apply_overrides(cfg, {
        "name": "bench-re-klue", "model.backbone": str(encoder),
        "data.train": str(re_dir / "klue-re-train.csv"), "data.dev": str(re_dir / "klue-re-dev.csv"),
        "data.relation_list": str(re_dir / "relation_list.json"), "data.max_train_examples": None,
        "train.num_workers": 1, "train.threads_per_worker": "auto", "train.epochs": epochs,
        "train.early_stopping_patience": 0, "train.output_dir": str(out),
    })


def run_dir(out: Path, overrides: dict[str, Any], seed: int) -> Path:
    slug = "-".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in sorted(overrides.items())) or "base"
    return out / f"{slug}-seed{seed}"


def finished(out: Path, overrides: dict[str, Any], seed: int) -> bool:
    return finished_run(run_dir(out, overrides, seed))


def train(cfg: ReRunConfig, out: Path, overrides: dict[str, Any], seed: int) -> dict[str, Any]:
    """One run (reused when it finished in ``out`` before): its best epoch's dev figures and curve."""
    run_cfg = apply_overrides(cfg, {**overrides, "train.seed": seed, "train.output_dir": str(run_dir(out, overrides, seed))})
    res = reuse_or_train(run_cfg)
    best = res.best_metrics
    return {"f1": best["dev_micro_f1"], "auprc": best["dev_auprc"], "precision": best["dev_micro_precision"],
            "recall": best["dev_micro_recall"], "floor": best["dev_baseline_micro_f1"], "best_epoch": best["epoch"],
            "curve": [h["dev_micro_f1"] for h in res.history],
            "epoch_seconds": statistics.mean(h["epoch_train_seconds"] for h in res.history)}


def run(data_dir: Path, out: Path, encoder: Path | None = None, epochs: int = EPOCHS,
        seeds: tuple[int, ...] = SEEDS, finished_only: bool = False) -> str:
    """Seed-major (every recipe's seed 0, then seed 1, ...) so that a partial run already compares
    every recipe. ``finished_only``: the table from the runs finished in ``out``, training nothing."""
    encoder = multilingual_e5_small(data_dir, encoder)
    cfg = base_config(data_dir, encoder, out, epochs)
    load = os.getloadavg()[0]
    results: dict[str, list[dict[str, Any]]] = {label: [] for label in RECIPES}
    for seed in seeds:
        for label, overrides in RECIPES.items():
            if finished_only and not finished(out, overrides, seed):
                continue
            r = train(cfg, out, overrides, seed)
            results[label].append({**r, "seed": seed})
            print(f"[re-klue] {label} seed {seed}: micro F1 {r['f1']:.3f} (floor {r['floor']:.3f})", flush=True)
    results = {label: runs for label, runs in results.items() if runs}
    if not results:
        raise SystemExit(f"re-klue: no finished run in {out}")
    floor = next(iter(results.values()))[0]["floor"]
    rows = [[label, mean_spread([r["f1"] for r in runs]), statistics.mean(r["f1"] for r in runs) / floor,
             mean_spread([r["auprc"] for r in runs]), f"{statistics.mean(r['precision'] for r in runs):.3f} / "
             f"{statistics.mean(r['recall'] for r in runs):.3f}",
             " / ".join(f"{r['best_epoch']} (seed {r['seed']})" for r in runs),
             statistics.mean(r["epoch_seconds"] for r in runs)] for label, runs in results.items()]
    losers = [label for label, runs in results.items() if statistics.mean(r["f1"] for r in runs) <= floor]
    done = {label: {r["seed"] for r in runs} for label, runs in results.items()}
    missing = [f"{label} (seed {', '.join(str(s) for s in seeds if s not in done.get(label, set()))})"
               for label in RECIPES if set(seeds) - done.get(label, set())]
    verdict = (f"These recipes do not beat the floor: {'; '.join(losers)}." if losers
               else "Every recipe beats the floor.")
    return "\n".join([
        "## Relation extraction recipes on a pretrained multilingual encoder: KLUE-RE (issue 27)",
        "",
        f"KLUE-RE: all 4,500 training rows, all 1,000 dev rows (they choose the best epoch), 30 labels. Encoder: "
        f"{E5_NAME}, {E5_SHAPE}; the recipe of `spanfirst/configs/klue_re_e5_small.yaml` (its word embeddings "
        f"frozen, 1 worker x 2 threads, length-grouped batches, {epochs} epochs) with each row's change; seeds "
        f"{list(seeds)}. Regenerate with `pip install -e '.[bench]'` then `python pipelines/benchmark.py re-klue "
        f"--workdir DIR` (hours on 2 cores; finished runs in DIR are reused). x86_64 CPU, 2 cores, load average "
        f"{load:.1f} " + ("when this table was written from finished runs." if finished_only else "before the runs."),
        "",
        table(["recipe", "dev micro F1", "ratio to the floor", "dev AUPRC", "precision / recall", "best epoch per seed",
               "train s/epoch"], rows),
        "",
        f"Type-pair floor (the most frequent training relation of each subject/object type pair) on dev: "
        f"{floor:.3f}. {verdict} Micro F1 leaves `no_relation` out; F1 and AUPRC are mean ± standard deviation "
        "over the seeds each row ran."
        + (f" Not run yet (`--finished-only` wrote this table): {'; '.join(missing)}." if missing else ""),
    ])


def analysis(data_dir: Path, out: Path, encoder: Path | None = None, epochs: int = EPOCHS, seed: int = 0,
             finished_only: bool = False) -> str:
    """One seed per setting of :data:`ANALYSIS`: dev micro F1 after every epoch beside the floor.
    ``finished_only``: the table from the runs that finished in ``out``, the others listed as not run."""
    encoder = multilingual_e5_small(data_dir, encoder)
    cfg = base_config(data_dir, encoder, out, epochs)
    load = os.getloadavg()[0]
    rows, floor, skipped = [], None, []
    for factor, label, overrides in ANALYSIS:
        if finished_only and not finished(out, overrides, seed):
            skipped.append(label)
            continue
        r = train(cfg, out, overrides, seed)
        floor = r["floor"]
        print(f"[re-klue-analysis] {label}: micro F1 {r['f1']:.3f} (floor {floor:.3f}), curve {r['curve']}", flush=True)
        rows.append([factor, label, " / ".join(f"{x:.3f}" for x in r["curve"]), r["f1"], r["f1"] / floor,
                     r["auprc"], f"{r['precision']:.3f} / {r['recall']:.3f}"])
    return "\n".join([
        "## Why KLUE-RE trailed the type-pair floor, measured (issue 27)",
        "",
        f"KLUE-RE with {E5_NAME}: the design's recipe as in the recipes table (all 4,500 training rows, all 1,000 "
        f"dev rows, {epochs} epochs, lr 1e-4 backbone / 1e-3 heads, seed {seed}), each row changing one thing. "
        "Regenerate with `python pipelines/benchmark.py re-klue-analysis --workdir DIR` (the same DIR as "
        f"`re-klue` shares its runs). x86_64 CPU, 2 cores, load average {load:.1f} "
        + ("when this table was written from finished runs." if finished_only else "before the runs."),
        "",
        table(["what is measured", "run", "dev micro F1 after each epoch", "best", "ratio to the floor",
               "AUPRC", "precision / recall"], rows),
        "",
        f"Type-pair floor on dev: {floor:.3f}."
        + (f" Not run yet (`--finished-only` wrote this table): {'; '.join(skipped)}." if skipped else ""),
    ])
