"""``pipelines/benchmark.py heads-klue``: the NER heads on KLUE-NER with a pretrained multilingual
encoder (multilingual-e5-small, the ``bench`` extra; see :mod:`benchmarks.encoders`).

1,000 sentences of the training file are held back as a test split (a seeded sample, never used
to choose a learning rate, an epoch or a threshold); the heads train on the other 3,000 and are
chosen on all 500 dev sentences. Per head the backbone learning rate is chosen by the platform's
own sweep (``pipelines/sweep.py``, a grid, the same budget for every head, scored on dev), then the
head trains with it for every seed. Strict and lenient F1 on dev (best epoch) and test (that
checkpoint), the filtered dictionary floor beside them, time ratios to BIO, and where span-first's
misses come from (:mod:`benchmarks.ner_misses`), with and without its edge trims.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.encoders import E5_NAME, E5_SHAPE, multilingual_e5_small
from benchmarks.heads import head_costs, mean_spread
from benchmarks.heads_wnut import tune_lr
from benchmarks.ner import inference_speed, reuse_or_train
from benchmarks.ner_misses import MISS_CLASSES, SPURIOUS_CLASSES, classify
from benchmarks.report import table
from spanfirst import checkpoint as ckpt
from spanfirst.config import NerRunConfig, apply_overrides, get_dotted, load_config, save_config
from spanfirst.data.readers import read_ner, write_span_jsonl
from spanfirst.evaluate import evaluate_checkpoint

REPO = Path(__file__).resolve().parents[1]
# label -> (model.head, overrides)
HEADS: dict[str, tuple[str, dict[str, Any]]] = {
    "span-first": ("span_first", {}),
    "span-first without edge trims": ("span_first", {"ner.max_edge_trim": 0}),
    "BIO": ("bio", {}),
    "GlobalPointer": ("global_pointer", {}),
    "Efficient GP": ("efficient_global_pointer", {}),
}
BASELINE = "BIO"
SPAN_FIRST = ("span-first", "span-first without edge trims")
# an ablation trains with the learning rate its full model's sweep chose (one change at a time)
LR_FROM = {"span-first without edge trims": "span-first"}


@dataclass(frozen=True)
class Setup:
    test_size: int = 1000  # sentences of klue-ner-train.tsv held back as the test split
    split_seed: int = 0
    epochs: int = 4
    lr_grid: tuple[float, ...] = (5e-5, 1e-4, 2e-4, 4e-4)  # train.lr_backbone; the sweep trains each for sweep_epochs
    sweep_epochs: int = 2
    lr_heads: float = 1e-3
    seeds: tuple[int, ...] = (0, 1, 2)
    batch_size: int = 16
    heads: tuple[str, ...] = tuple(HEADS)
    train_examples: int | None = None  # a cap on the training split (a smoke run); None: all of it


def split(data_dir: Path, out: Path, setup: Setup) -> dict[str, Path]:
    """The training file cut into train and a held-back test split (span JSON lines), and dev."""
    files = {"train": out / "data" / "train.jsonl", "test": out / "data" / "test.jsonl",
             "dev": data_dir / "klue-ner" / "klue-ner-dev.tsv"}
    if not files["test"].is_file():
        every = read_ner(data_dir / "klue-ner" / "klue-ner-train.tsv")
        held = set(random.Random(setup.split_seed).sample(range(len(every)), setup.test_size))
        write_span_jsonl([e for i, e in enumerate(every) if i not in held], files["train"])
        write_span_jsonl([e for i, e in enumerate(every) if i in held], files["test"])
    return files


def base_config(files: dict[str, Path], encoder: Path, out: Path, setup: Setup) -> NerRunConfig:
    cfg = load_config(REPO / "spanfirst" / "configs" / "klue_ner_e5_small.yaml")
    return apply_overrides(cfg, {
        "name": "bench-heads-klue", "data.format": "auto",
        "data.train": str(files["train"]), "data.dev": str(files["dev"]), "model.backbone": str(encoder),
        "train.num_workers": 1, "train.threads_per_worker": "auto", "train.epochs": setup.epochs,
        "train.batch_size": setup.batch_size, "train.lr_heads": setup.lr_heads,
        "train.early_stopping_patience": 0, "train.output_dir": str(out),
        "data.max_train_examples": setup.train_examples,
    })


def run_slug(head: str, overrides: dict[str, Any]) -> str:
    """A head's run folder name: the head and its overrides' values."""
    return head + "".join(f"-{k.rsplit('.', 1)[-1]}{v}" for k, v in overrides.items())


def seeded_runs(cfg: NerRunConfig, out: Path, label: str, head: str, overrides: dict[str, Any], lr: float,
                setup: Setup, test_file: str) -> list[dict[str, Any]]:
    """One training run per seed with ``lr`` (runs finished in ``out`` before are reused), each
    scored on dev (best epoch) and on the test split."""
    slug = run_slug(head, overrides)
    runs = []
    for seed in setup.seeds:
        run_cfg = apply_overrides(cfg, {**overrides, "model.head": head, "train.seed": seed, "train.lr_backbone": lr,
                                        "train.output_dir": str(out / f"{slug}-lr{lr:g}-seed{seed}")})
        res = reuse_or_train(run_cfg)
        best = res.best_metrics
        test, test_report = evaluate_checkpoint(res.best_dir, test_file, Path(res.best_dir) / "test")
        runs.append({
            "dev": best["dev_strict_f1"], "dev_lenient": best["dev_lenient_f1"], "test": test["strict_f1"],
            "test_lenient": test["lenient_f1"], "dev_floor": best["dev_baseline_strict_f1"],
            "test_floor": test["baseline_strict_f1"], "best_epoch": best["epoch"],
            "epoch_seconds": statistics.mean(h["epoch_train_seconds"] for h in res.history),
            "best_dir": res.best_dir, "test_report": test_report,
        })
        print(f"[heads-klue] {label} seed {seed}: dev {runs[-1]['dev']:.3f} test {runs[-1]['test']:.3f} "
              f"(floor {runs[-1]['test_floor']:.3f})", flush=True)
    return runs


def run(data_dir: Path, out: Path, encoder: Path | None = None, setup: Setup = Setup()) -> str:
    unknown = [h for h in setup.heads if h not in HEADS]
    if unknown or BASELINE not in setup.heads:
        raise ValueError(f"heads-klue heads: {unknown or setup.heads} - choose from {list(HEADS)}, {BASELINE!r} "
                         "among them (the time ratios are to it)")
    encoder = multilingual_e5_small(data_dir, encoder)
    files = split(data_dir, out, setup)
    cfg = base_config(files, encoder, out, setup)
    load = os.getloadavg()[0]
    results: dict[str, dict[str, Any]] = {}
    for label in setup.heads:
        head, overrides = HEADS[label]
        slug = run_slug(head, overrides)
        if LR_FROM.get(label) in results:
            lr, grid = results[LR_FROM[label]]["lr"], []
        elif len(setup.lr_grid) == 1:  # one lr for every head: no sweep
            lr, grid = setup.lr_grid[0], []
        else:
            lr, grid = tune_lr(cfg, out / f"{slug}-lr", label, head, overrides, setup, tag="klue")
        results[label] = {"lr": lr, "grid": grid,
                          "runs": seeded_runs(cfg, out, label, head, overrides, lr, setup, str(files["test"]))}
    dev = read_ner(files["dev"])
    load_speed = os.getloadavg()[0]
    for r in results.values():
        r["speed"] = inference_speed(r["runs"][0]["best_dir"], [e.text for e in dev], repeats=2)["sentences_per_second"]
    types = sorted({s.type for e in dev for s in e.entities})
    costs = {c["head"]: c for c in head_costs(str(encoder), dev, types, {k: HEADS[k] for k in results}, (64,),
                                              setup.batch_size)}
    misses = {label: classify(results[label]["runs"][0]["best_dir"], dev) for label in SPAN_FIRST if label in results}
    (out / "misses.json").write_text(json.dumps(misses, indent=1), encoding="utf-8")
    fixed = {label: fixed_rule(results[label]["runs"], out / "fixed-rule" / slugify(label), files)
             for label in results if HEADS[label][0] in FIXED_RULE}
    return section(results, costs, misses, fixed, setup, load, load_speed)


# the heads whose threshold was a fixed rule before it was chosen on dev: (config key, the rule)
FIXED_RULE = {"global_pointer": ("ner.global_pointer.threshold", 0.5),
              "efficient_global_pointer": ("ner.global_pointer.threshold", 0.5),
              "gliner": ("ner.gliner.threshold", 0.5)}


def slugify(label: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in label.lower())


def fixed_rule(runs: list[dict[str, Any]], work: Path, files: dict[str, Path]) -> dict[str, Any]:
    """Each seed's checkpoint decoded at its head's old fixed rule (a positive logit) instead of
    the threshold chosen on dev: dev and test strict F1, and the chosen thresholds."""
    rows = []
    for i, r in enumerate(runs):
        saved = ckpt.read(r["best_dir"])
        key, rule = FIXED_RULE[saved.cfg.model.head]
        copy = work / f"seed{i}"
        if not (copy / "labels.json").is_file():
            copy.mkdir(parents=True, exist_ok=True)
            for name in ("heads.safetensors", "labels.json"):
                shutil.copy2(Path(r["best_dir"]) / name, copy / name)
            (copy / "backbone").symlink_to(Path(r["best_dir"]).resolve() / "backbone")
        save_config(apply_overrides(saved.cfg, {key: rule}), copy / "config.yaml")
        dev, _ = evaluate_checkpoint(copy, str(files["dev"]), copy / "dev")
        test, _ = evaluate_checkpoint(copy, str(files["test"]), copy / "test")
        rows.append({"dev": dev["strict_f1"], "test": test["strict_f1"],
                     "chosen": get_dotted(saved.cfg.to_dict(), key)})
    return {"rule": rule, "runs": rows}


def section(results: dict[str, dict[str, Any]], costs: dict[str, dict[str, Any]], misses: dict[str, Any],
            fixed: dict[str, Any], setup: Setup, load: float, load_speed: float) -> str:
    base = results[BASELINE]
    base_epoch = statistics.mean(x["epoch_seconds"] for x in base["runs"])
    rows = []
    for label, r in results.items():
        runs = r["runs"]
        rows.append([
            label, f"{r['lr']:g}", mean_spread([x["dev"] for x in runs]), mean_spread([x["dev_lenient"] for x in runs]),
            mean_spread([x["test"] for x in runs]), mean_spread([x["test_lenient"] for x in runs]),
            statistics.mean(x["epoch_seconds"] for x in runs) / base_epoch,
            costs[label]["train"] / costs[BASELINE]["train"], costs[label]["infer"] / costs[BASELINE]["infer"],
            base["speed"] / r["speed"],
        ])
    floor = base["runs"][0]
    mean_test = {label: statistics.mean(x["test"] for x in r["runs"]) for label, r in results.items()}
    mean_dev = {label: statistics.mean(x["dev"] for x in r["runs"]) for label, r in results.items()}
    losers = [label for label in results if mean_test[label] <= floor["test_floor"] or mean_dev[label] <= floor["dev_floor"]]
    verdict = (f"These heads do not beat it on dev or test: {', '.join(losers)}." if losers
               else "Every head beats it on dev and on test.")
    miss_rows = [[c] + [f"{m['misses'][c]} ({m['misses'][c] / m['entities']:.1%})" for m in misses.values()]
                 for c in MISS_CLASSES]
    spur_rows = [[c] + [str(m["spurious"][c]) for m in misses.values()] for c in SPURIOUS_CLASSES]
    grid = "; ".join(f"{label}: " + ", ".join(f"{lr:g} {f1:.3f}" for lr, f1 in r["grid"])
                     for label, r in results.items() if r["grid"])
    grid += "".join(f"; {label}: {src}'s" for label, src in LR_FROM.items() if label in results)
    return "\n".join([
        "## NER heads on a pretrained multilingual encoder: KLUE-NER (issue 27)",
        "",
        f"KLUE-NER: `klue-ner-train.tsv` less {setup.test_size} sentences held back as a test split (a seeded "
        f"sample, seed {setup.split_seed}; never used to choose a learning rate, an epoch or a threshold), so "
        f"{4000 - setup.test_size} training sentences; all 500 dev sentences choose the best epoch and each head's "
        f"threshold. Encoder: {E5_NAME}, {E5_SHAPE}; its word embeddings frozen (`model.freeze_word_embeddings`), "
        f"the recipe of `spanfirst/configs/klue_ner_e5_small.yaml`: 1 worker x 2 threads, batch {setup.batch_size}, "
        f"length-grouped batches, {setup.epochs} epochs, head lr {setup.lr_heads:g}; seeds {list(setup.seeds)}. "
        + (f"One backbone lr for every head, the config's {setup.lr_grid[0]:g} (no per-head sweep: run without `--lr` "
           "for one). " if len(setup.lr_grid) == 1 else
           f"The backbone lr per head is the best of {list(setup.lr_grid)} by dev strict F1 after {setup.sweep_epochs} "
           "epochs in a grid sweep run with `pipelines/sweep.py` (the same budget per head). ")
        + "Regenerate with `pip install -e '.[bench]'` then `python pipelines/benchmark.py heads-klue --workdir DIR"
        + (f" --lr {setup.lr_grid[0]:g}" if len(setup.lr_grid) == 1 else "")
        + (f" --epochs {setup.epochs}" if setup.epochs != Setup.epochs else "")
        + (f" --heads {' '.join(repr(h) for h in setup.heads)}" if setup.heads != Setup.heads else "")
        + "` (hours on 2 cores; finished runs "
        f"in DIR are reused). x86_64 CPU, 2 cores; load average {load:.1f} before the training runs, {load_speed:.1f} "
        "before the timings. Time ratios are to BIO: each run's training seconds per epoch (mean over seeds), a "
        f"training step and a decode (batch {setup.batch_size} of dev sentences joined to 64 tokens, best of 3, one "
        "process, after the training runs) and the full predictor over dev (batch 64, best of 2, seed 0's checkpoint).",
        "",
        table(["head", "backbone lr", "dev strict F1", "dev lenient F1", "test strict F1", "test lenient F1",
               "epoch / BIO", "train step / BIO", "decode / BIO", "predictor / BIO"], rows),
        "",
        f"Filtered dictionary floor (training surface forms that are entities in at least half of their "
        f"occurrences): dev {floor['dev_floor']:.3f}, test {floor['test_floor']:.3f}. {verdict} F1 is mean ± "
        "standard deviation over the seeds; lenient F1 counts a span within one token of the gold one at each edge.",
        "",
        "Where span-first's dev misses come from (seed 0's checkpoint; every gold entity in one class, decided "
        "in this order; `benchmarks/ner_misses.py`). An edge inside a token: the entity starts or ends inside a "
        "subword token (XLM-R's pieces glue Korean particles and endings onto names: \"김흥국이\" is \"▁김\", "
        "\"흥\", \"국이\"), so no span of whole tokens is the entity; with edge trims it counts only where the "
        "model found the tokens but trimmed them wrong.",
        "",
        table(["gold entity"] + list(misses), miss_rows),
        "",
        table(["spurious prediction"] + list(misses), spur_rows),
        "",
        "The thresholded heads decide with a threshold chosen on dev after every evaluation (as span-first "
        "always has); before, GlobalPointer and Efficient GP kept every span with a positive score. The same "
        "checkpoints decoded at that fixed rule:",
        "",
        table(["head", "threshold chosen on dev (per seed)", "dev strict F1: chosen / fixed rule",
               "test strict F1: chosen / fixed rule"],
              [[label, " / ".join(f"{x['chosen']:.2f}" for x in f["runs"]),
                f"{mean_spread([x['dev'] for x in results[label]['runs']])} / {mean_spread([x['dev'] for x in f['runs']])}",
                f"{mean_spread([x['test'] for x in results[label]['runs']])} / "
                f"{mean_spread([x['test'] for x in f['runs']])}"] for label, f in fixed.items()]),
    ] + (["", f"The lr sweeps (backbone lr, dev strict F1 after {setup.sweep_epochs} epoch"
              f"{'s' if setup.sweep_epochs != 1 else ''}): {grid}."] if grid else []))
