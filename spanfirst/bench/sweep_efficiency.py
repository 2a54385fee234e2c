"""Sweep efficiency on KLUE-RE: one search space (search_spaces/re.yaml's), one trial-epoch budget,
three strategies, each run as a user runs it (``pipelines/sweep.py`` in its own process, its own Ray
and a SQLite MLflow store in the work folder):

(a) ASHA + random search, (b) the same random search without early stopping (the baseline),
(c) Optuna TPE with (asynchronous) Hyperband pruning.

Per-epoch progress comes from Tune's per-trial ``result.json`` (one line per reported epoch, with
Tune's ``timestamp``), so the curves count exactly the epochs the budget counted.
"""

from __future__ import annotations

import json
import math
import os
import platform
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from spanfirst.bench.report import table
from spanfirst.bench.sweep import timed_sweep
from spanfirst.sweep.summary import SCHEDULER_STOPS

REPO = Path(__file__).resolve().parents[2]
RE_SPACE = REPO / "search_spaces" / "re.yaml"
TARGET_SHARE = 0.95  # the target: this share of the best score any strategy reached


@dataclass(frozen=True)
class Strategy:
    key: str
    label: str
    scheduler: str  # scheduler.type
    algorithm: str  # search.algorithm


STRATEGIES = [
    Strategy("asha", "ASHA + random search", "asha", "random"),
    Strategy("no-stop", "random search, no early stopping", "none", "random"),
    Strategy("tpe-hyperband", "Optuna TPE + Hyperband pruning", "hyperband", "optuna"),
    Strategy("tpe-asha", "Optuna TPE + ASHA (the shipped default)", "asha", "optuna"),
]
BASELINE = "no-stop"


@dataclass(frozen=True)
class Setup:
    """What every strategy shares. About 15-20 minutes in all on an idle 2-core machine (35 under heavy load)."""

    max_train_examples: int = 1000  # the first rows of klue-re-train.csv; dev: all of klue-re-dev.csv
    max_epochs: int = 6
    grace_period: int = 1
    reduction_factor: int = 2
    budget: int = 30  # search.max_trial_epochs
    num_samples: int = 64  # more than the budget lets any strategy start: the budget ends every sweep
    max_concurrent: int = 2
    seed: int = 0


def write_space(data_dir: Path, work: Path, strategy: Strategy, setup: Setup) -> Path:
    """re.yaml's space and trial layout on the real KLUE-RE files, with this strategy's search."""
    re_space = yaml.safe_load(RE_SPACE.read_text(encoding="utf-8"))
    spec = {
        "base": str(REPO / "spanfirst" / "configs" / "quickstart_re.yaml"),
        "metric": re_space.get("metric", "dev_score"),
        "scheduler": {"type": strategy.scheduler, "grace_period": setup.grace_period,
                      "reduction_factor": setup.reduction_factor, "max_epochs": setup.max_epochs},
        "search": {"algorithm": strategy.algorithm, "num_samples": setup.num_samples,
                   "max_concurrent": setup.max_concurrent, "seed": setup.seed, "max_trial_epochs": setup.budget},
        "trial": re_space["trial"],
        "mlflow": {"experiment": f"bench-sweep-efficiency-{strategy.key}", "registered_model": f"bench-re-{strategy.key}"},
        "overrides": {"data.train": str(data_dir / "klue-re" / "klue-re-train.csv"),
                      "data.dev": str(data_dir / "klue-re" / "klue-re-dev.csv"),
                      "data.relation_list": str(data_dir / "klue-re" / "relation_list.json"),
                      "data.max_train_examples": setup.max_train_examples},
        "space": re_space["space"],
    }
    work.mkdir(parents=True, exist_ok=True)
    path = work / f"re-{strategy.key}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def epoch_events(exp_dir: Path, metric: str) -> list[tuple[float, float]]:
    """(timestamp, dev metric) of every epoch Tune recorded, over all trials, in time order."""
    events = []
    for result in exp_dir.glob("*/result.json"):
        for line in result.read_text(encoding="utf-8").splitlines():
            row = json.loads(line) if line.strip() else {}
            if isinstance(row.get(metric), (int, float)) and "timestamp" in row:
                events.append((float(row["timestamp"]), float(row[metric]), int(row.get("training_iteration", 0))))
    return [(t, score) for t, score, _ in sorted(events)]


def curve(events: list[tuple[float, float]], started: float) -> list[tuple[float, int, float]]:
    """(seconds since the sweep started, trial-epochs so far, best score so far) after each epoch."""
    out, best = [], -math.inf
    for n, (t, score) in enumerate(events, 1):
        best = max(best, score)
        out.append((t - started, n, best))
    return out


def first_reaching(points: list[tuple[float, int, float]], target: float) -> tuple[float, int] | None:
    """(seconds, trial-epochs) at which the best-so-far first reached ``target``."""
    return next(((s, n) for s, n, best in points if best >= target), None)


def measure(data_dir: Path, work: Path, strategy: Strategy, setup: Setup) -> dict[str, Any]:
    space = write_space(data_dir, work / strategy.key, strategy, setup)
    res = timed_sweep(work / strategy.key, space=space)
    metric = yaml.safe_load(space.read_text(encoding="utf-8"))["metric"]
    rows = res["rows"]
    overheads = [float(r["overhead_s"]) for r in rows if r["overhead_s"]]
    return {
        **res, "strategy": strategy, "points": curve(epoch_events(res["exp_dir"], metric), res["started"]),
        "started_trials": sum(int(r["epochs"]) > 0 for r in rows),
        "scheduler_stops": sum(r["status"] in SCHEDULER_STOPS for r in rows),
        "ran_to_end": sum(r["status"] == "completed" for r in rows),
        "overhead_mean": sum(overheads) / len(overheads) if overheads else float("nan"),
    }


def plot(results: list[dict[str, Any]], target: float, path: Path) -> Path:
    """Best-so-far dev metric against wall time and against trial-epochs, one line per strategy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (by_time, by_epochs) = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
    for r, style in zip(results, ("-", "--", "-.")):  # distinct styles: equal curves must not hide each other
        secs, epochs, best = zip(*r["points"]) if r["points"] else ((), (), ())
        by_time.step(secs, best, where="post", linestyle=style, linewidth=1.6, label=r["strategy"].label)
        by_epochs.step(epochs, best, where="post", linestyle=style, linewidth=1.6, label=r["strategy"].label)
    for ax, xlabel in ((by_time, "wall time since the sweep started (s)"), (by_epochs, "trial-epochs used")):
        ax.axhline(target, color="grey", linestyle=":", linewidth=1)
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    by_time.set_ylabel("best dev micro F1 so far")
    by_epochs.legend(fontsize=8, loc="lower right")
    fig.suptitle(f"KLUE-RE sweep efficiency (dotted: target = {TARGET_SHARE:.0%} of the best score reached)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _ratio(value: float | None, base: float | None) -> str:
    return f"{value / base:.2f}" if value is not None and base else "n/a"


def run(data_dir: Path, work: Path, png: Path, setup: Setup = Setup()) -> str:
    """Run the three sweeps; write the plot to ``png``; return the markdown section."""
    results = [measure(data_dir, work, s, setup) for s in STRATEGIES]
    best_any = max(r["points"][-1][2] for r in results if r["points"])
    target = TARGET_SHARE * best_any
    plot(results, target, png)
    for r in results:
        r["best"] = r["points"][-1][2] if r["points"] else float("nan")
        r["epochs_used"] = r["points"][-1][1] if r["points"] else 0
        r["hit"] = first_reaching(r["points"], target)
    base = next(r for r in results if r["strategy"].key == BASELINE)

    def hit(r: dict[str, Any], i: int) -> float | None:
        return None if r["hit"] is None else float(r["hit"][i])

    rows = []
    for r in results:
        rows.append([
            r["strategy"].label + (" (baseline)" if r is base else ""),
            r["best"], _ratio(r["best"], base["best"]), r["epochs_used"],
            f"{r['started_trials']} ({r['scheduler_stops']} / {r['ran_to_end']})",
            r["wall"], _ratio(r["wall"], base["wall"]),
            "not reached" if r["hit"] is None else r["hit"][1], _ratio(hit(r, 1), hit(base, 1)),
            "not reached" if r["hit"] is None else f"{r['hit'][0]:.0f}", _ratio(hit(r, 0), hit(base, 0)),
            r["overhead_mean"], r["cpu_util"],
        ])
    cfg = asdict(setup)
    lines = [
        "## Sweep efficiency (issue 6)",
        "",
        f"KLUE-RE (`klue-re/klue-re-train.csv`, its first {setup.max_train_examples} rows, to fit the time; dev: all "
        f"1,000 rows of `klue-re-dev.csv`), the tiny offline backbone of `quickstart_re.yaml`, the search space of "
        f"`search_spaces/re.yaml` (focal gamma/alpha, label smoothing, markers, pooling, LR schedule, LR), 1 Ray "
        f"Train worker per trial, {setup.max_concurrent} trials at a time, up to {setup.max_epochs} epochs per "
        f"trial, search seed {setup.seed}. Every strategy gets the same budget of {setup.budget} trial-epochs "
        f"(`search.max_trial_epochs`: the sweep ends when its trials together have reported that many epochs) "
        f"and runs as a user runs it: `python pipelines/sweep.py SPACE` in its own process, its own Ray, a SQLite "
        f"MLflow store in the work folder; wall time includes Ray start and registering the best model. "
        f"{platform.machine()} CPU, {os.cpu_count()} cores, shared with other work (load average before each sweep: "
        + ", ".join(f"{r['load_before']:.1f}" for r in results) + "). Regenerate with "
        f"`pip install -e .[bench]` and `python pipelines/benchmark.py sweep-efficiency` (this run: "
        f"{sum(r['wall'] for r in results) / 60:.0f} minutes).",
        "",
        f"- ASHA: grace period {setup.grace_period}, reduction factor {setup.reduction_factor}, rungs up to "
        f"{setup.max_epochs} epochs (`scheduler.type: asha`).",
        "- No early stopping: `scheduler.type: none` (FIFO), every trial runs all epochs.",
        "- Optuna TPE (`search.algorithm: optuna`, Optuna's default TPE sampler, seeded) with Hyperband pruning "
        "(`scheduler.type: hyperband`): asynchronous Hyperband, i.e. one ASHA bracket per Hyperband bracket, "
        "trials spread over them, as Optuna's HyperbandPruner does. Note that TPE samples its first 10 "
        "trials at random (Optuna's default `n_startup_trials`), which is most of the trials a budget this small "
        "starts.",
        "",
        f"Target: {TARGET_SHARE:.0%} of the best dev micro F1 any strategy reached = {target:.3f}. Ratios are to the "
        "no-early-stopping baseline, measured in the same run. Times to the target count from the sweep "
        "process's start (Tune's per-report timestamps, 1 s resolution).",
        "",
        table(["strategy", "best dev micro F1", "ratio", "trial-epochs used", "trials started (scheduler-stopped / "
               "ran all epochs)", "wall time (s)", "ratio", "trial-epochs to target", "ratio",
               "wall s to target", "ratio", "per-trial start-up (s)", "CPU busy (share of all cores)"], rows),
        "",
        "![best dev micro F1 so far against wall time and trial-epochs](sweep_efficiency.png)",
        "",
        "Trials started counts trials that reported at least one epoch; the trials running when the budget ran "
        "out end as `stopped_by_epoch_budget`. CPU busy is the whole machine's busy core-seconds over wall time "
        "x cores during the sweep (/proc/stat), other users' work included. Per-trial start-up is each trial's "
        "time from start to its first report minus that epoch's training and evaluation: an early-stopping "
        "strategy pays it for every trial it starts, which trial-epochs do not show and wall time does. "
        "One run, one seed: differences of a few points of F1 are within the spread between runs.",
        "",
        f"Setup: `{json.dumps(cfg)}`.",
    ]
    return "\n".join(lines)
