"""``pipelines/benchmark.py sweep-klue``: does the platform's default search pay on a pretrained
encoder? ``search_spaces/ner_span_first.yaml`` (TPE + ASHA, the base config as the first trial)
run as a user runs it (``pipelines/sweep.py``, its own process) with multilingual-e5-small on a
KLUE-NER subset that fits 2 cores, once per search seed; each sweep's best dev F1 beside its own
first trial, which trains the base config (``spanfirst/configs/klue_ner_e5_small.yaml``) as it is.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

import yaml

from benchmarks.encoders import E5_NAME, multilingual_e5_small
from benchmarks.heads import mean_spread
from benchmarks.report import table
from benchmarks.sweep import _floor, timed_sweep
from spanfirst.sweep.runner import first_trial
from spanfirst.sweep.space import load_space

REPO = Path(__file__).resolve().parents[1]
SPACE = REPO / "search_spaces" / "ner_span_first.yaml"
BASE = REPO / "spanfirst" / "configs" / "klue_ner_e5_small.yaml"
SEEDS = (0, 1, 2)
TRAIN_EXAMPLES = 1000
MAX_EPOCHS = 3
BUDGET = 24  # trial-epochs per sweep (search.max_trial_epochs)


def write_space(data_dir: Path, encoder: Path, work: Path, seed: int) -> Path:
    """The shipped span-first space on CPU: the e5 base config, a KLUE-NER subset, 2 one-core
    trials at a time, ``MAX_EPOCHS`` per trial, ``BUDGET`` trial-epochs; LoRA left out (its
    adapters train on a GPU-sized budget)."""
    shipped = yaml.safe_load(SPACE.read_text(encoding="utf-8"))
    spec = {
        "base": str(BASE),
        "metric": "dev_score",
        "scheduler": {**shipped["scheduler"], "max_epochs": MAX_EPOCHS},
        "search": {**shipped["search"], "num_samples": 64, "max_concurrent": 2, "seed": seed,
                   "max_trial_epochs": BUDGET},
        "trial": {"workers": 1, "cpus_per_worker": 1, "gpus_per_worker": 0},
        "mlflow": {"experiment": "bench-sweep-klue", "registered_model": "bench-sweep-klue"},
        "overrides": {"model.backbone": str(encoder), "data.max_train_examples": TRAIN_EXAMPLES,
                      "data.train": str(data_dir / "klue-ner" / "klue-ner-train.tsv"),
                      "data.dev": str(data_dir / "klue-ner" / "klue-ner-dev.tsv")},
        "space": {k: v for k, v in shipped["space"].items() if not k.startswith("model.lora.")},
    }
    work.mkdir(parents=True, exist_ok=True)
    path = work / f"ner_span_first-seed{seed}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


def base_trial_score(rows: list[dict[str, Any]], space: Path) -> float:
    """The score of the trial that trained the base config's values (the sweep's first trial)."""
    point, _drawn = first_trial(load_space(space))

    def same(cell: str, value: Any) -> bool:
        got = yaml.safe_load(cell)
        if isinstance(value, float) or isinstance(got, float):
            return math.isclose(float(got), float(value), rel_tol=1e-6)
        return got == value

    base = [r for r in rows if all(same(r[k], v) for k, v in point.items())]
    if len(base) != 1:
        raise RuntimeError(f"{space}: {len(base)} trials trained the base config's values {point}")
    return float(base[0]["score"] or 0.0)


def run(data_dir: Path, out: Path, encoder: Path | None = None, seeds: tuple[int, ...] = SEEDS) -> str:
    encoder = multilingual_e5_small(data_dir, encoder)
    results = []
    for seed in seeds:
        done = out / f"seed{seed}" / "result.json"  # a finished sweep is reused (--workdir)
        if done.is_file():
            results.append(json.loads(done.read_text(encoding="utf-8")))
            continue
        space = write_space(data_dir, encoder, out / f"seed{seed}", seed)
        sweep = timed_sweep(out / f"seed{seed}", space=space)
        rows = sweep["rows"]
        scores = [float(r["score"]) for r in rows if r["score"] not in ("", None)]
        floor = _floor(sweep["exp_dir"])  # the filtered dictionary floor the trials' evaluation reports
        results.append({"seed": seed, "base": base_trial_score(rows, space), "best": max(scores), "trials": len(rows),
                        "wall": sweep["wall"], "load": sweep["load_before"], "floor": floor})
        done.write_text(json.dumps(results[-1]), encoding="utf-8")
        print(f"[sweep-klue] seed {seed}: base trial {results[-1]['base']:.3f}, best {results[-1]['best']:.3f}, "
              f"{len(rows)} trials, {sweep['wall']:.0f} s", flush=True)
    gains = [r["best"] - r["base"] for r in results]
    spread = statistics.stdev([r["base"] for r in results]) if len(results) > 1 else 0.0
    rows = [[r["seed"], r["base"], r["best"], r["best"] - r["base"], r["trials"], r["wall"], r["load"]] for r in results]
    verdict = ("above the base trial by more than the base trial's spread over seeds"
               if statistics.mean(gains) > spread else "not above the base trial by more than its spread over seeds")
    return "\n".join([
        "## The default search on a pretrained encoder: KLUE-NER (issue 27)",
        "",
        f"`search_spaces/ner_span_first.yaml` as shipped (Optuna TPE + Ray's ASHA, grace period "
        f"{yaml.safe_load(SPACE.read_text())['scheduler']['grace_period']}, the base config as the first trial) on "
        f"{E5_NAME} with the base config `spanfirst/configs/klue_ner_e5_small.yaml`, on what fits 2 cores: the first "
        f"{TRAIN_EXAMPLES} KLUE-NER training sentences, all 500 dev sentences, up to {MAX_EPOCHS} epochs per trial, "
        f"{BUDGET} trial-epochs per sweep (`search.max_trial_epochs`), 2 one-core trials at a time, LoRA left out of "
        "the space. Each sweep runs as a user runs it (`pipelines/sweep.py`, its own process and Ray, a SQLite MLflow "
        f"store). x86_64 CPU, 2 cores. Regenerate with `python pipelines/benchmark.py sweep-klue --workdir DIR` (a "
        "sweep finished in DIR is reused).",
        "",
        table(["search seed", "base config's trial: dev strict F1", "sweep's best", "gain", "trials started",
               "wall (s)", "load average before"], rows),
        "",
        f"Mean: base trial {mean_spread([r['base'] for r in results])}, sweep's best "
        f"{mean_spread([r['best'] for r in results])}, gain {statistics.mean(gains):.3f} (filtered dictionary floor "
        f"{results[0]['floor'] or float('nan'):.3f}). The sweep's best is {verdict} ({spread:.3f}).",
    ])

