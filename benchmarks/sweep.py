"""The quickstart sweep as a user runs it (``python pipelines/sweep.py``, its own process): wall
time, per-trial start-up against the epoch time of the same run, best F1 beside the dictionary
floor, and the machine's CPU utilisation meanwhile (busy core-seconds from /proc/stat over wall
time x cores); beside it the same space one trial at a time (start-up without contention)."""

from __future__ import annotations

import csv
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.report import table

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "search_spaces" / "quickstart.yaml"


def cpu_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of all cores from the first line of /proc/stat."""
    with open("/proc/stat", encoding="ascii") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    busy = user + nice + system + irq + softirq + steal
    return busy, busy + idle + iowait


def _floor(exp_dir: Path, key: str = "dev_baseline_strict_f1") -> float | None:
    """The dictionary floor the NER evaluation reports beside the model (same dev set), if any."""
    for result in exp_dir.glob("*/result.json"):
        for line in result.read_text(encoding="utf-8").splitlines():
            value = json.loads(line).get(key) if line.strip() else None
            if isinstance(value, (int, float)):
                return float(value)
    return None


TIMING = "timing.json"  # beside a finished benchmark sweep: what a rerun with the same work folder reuses


def timed_sweep(work: Path, *args: str, space: Path = QUICKSTART) -> dict[str, Any]:
    """Run the sweep CLI on ``space`` in ``work``; wall time, CPU use and its trials table. A work
    folder holding a finished sweep of the same command (its ``timing.json``) is read, not rerun."""
    work.mkdir(parents=True, exist_ok=True)
    cores = os.cpu_count() or 1
    cmd = [sys.executable, str(REPO / "pipelines" / "sweep.py"), str(space), *args,
           "--storage", str(work / "runs"), "--tracking-uri", f"sqlite:///{work / 'mlflow.db'}"]
    saved = json.loads((work / TIMING).read_text(encoding="utf-8")) if (work / TIMING).is_file() else None
    if saved and saved.get("cmd") == cmd[1:]:
        started, wall, load_before, cpu_util, stdout = (saved[k] for k in ("started", "wall", "load_before",
                                                                            "cpu_util", "stdout"))
    else:
        hz = os.sysconf("SC_CLK_TCK")
        load_before = os.getloadavg()[0]
        busy0, _ = cpu_jiffies()
        started, t0 = time.time(), time.perf_counter()
        proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        busy1, _ = cpu_jiffies()
        if proc.returncode != 0:
            raise RuntimeError(f"sweep failed:\n{(proc.stdout + proc.stderr)[-4000:]}")
        cpu_util, stdout = (busy1 - busy0) / hz / (wall * cores), proc.stdout
        (work / TIMING).write_text(json.dumps({"cmd": cmd[1:], "started": started, "wall": wall,
                                               "load_before": load_before, "cpu_util": cpu_util,
                                               "stdout": stdout}), encoding="utf-8")
    exp_dir = next((work / "runs").glob(f"{space.stem}-*/trials.csv")).parent
    rows = list(csv.DictReader((exp_dir / "trials.csv").open(encoding="utf-8")))
    startups = sorted(float(r["startup_s"]) for r in rows if r.get("startup_s"))
    epoch_times = [float(r["train_s"]) / int(r["epochs"]) for r in rows if r["train_s"] and int(r["epochs"] or 0)]
    return {
        "wall": wall, "started": started, "exp_dir": exp_dir, "rows": rows,
        "trials": len(rows), "cores": cores, "load_before": load_before,
        "cpu_util": cpu_util,
        "stopped": sum(r["status"] == "stopped_by_asha" for r in rows),
        "completed": sum(r["status"] == "completed" for r in rows),
        "startup_median": statistics.median(startups) if startups else float("nan"),
        "startup_max": startups[-1] if startups else float("nan"),
        "startups": startups,
        "epoch_median": statistics.median(epoch_times) if epoch_times else float("nan"),
        "epochs": sum(int(r["epochs"]) for r in rows), "best": max(float(r["score"]) for r in rows if r["score"]),
        "floor": _floor(exp_dir),
        "tail": stdout.strip().splitlines()[-3:],
    }


def run(work: Path) -> str:
    """Run the quickstart as shipped and the same space one trial at a time; return the markdown section."""
    full = timed_sweep(work / "quickstart")
    alone = timed_sweep(work / "one-at-a-time", "--max-concurrent", "1", "--num-samples", "4")

    def startup_row(label: str, key: str) -> list[object]:
        return [label, full[key], f"{full[key] / full['epoch_median']:.2f}x", alone[key],
                f"{alone[key] / alone['epoch_median']:.2f}x"]

    floor = full["floor"]
    lines = [
        "## Sweeps (issues 4 and 15)",
        "",
        f"`python pipelines/sweep.py` (search_spaces/quickstart.yaml as shipped: span-first NER on the bundled "
        f"KLUE-NER sample, tiny offline backbone, TPE + ASHA, 8 trials, 1 worker per trial, 2 trials at a time, "
        f"grace 1 / reduction 2 / 4 epochs), beside the same space run one trial at a time (4 trials), "
        f"{platform.machine()} CPU, {full['cores']} cores, each run as a user runs it (its own process; Ray start, "
        f"MLflow set-up and model registration included). Regenerate with `python pipelines/benchmark.py sweep` "
        f"(about 4 minutes). Load average before the runs: {full['load_before']:.1f}, {alone['load_before']:.1f}.",
        "",
        table(["measure", "quickstart (2 at a time)", "ratio to its median epoch", "one at a time", "ratio"], [
            ["whole command, wall time (s)", full["wall"], "", alone["wall"], ""],
            ["trials (ASHA-stopped / completed)", f"{full['trials']} ({full['stopped']} / {full['completed']})", "",
             f"{alone['trials']} ({alone['stopped']} / {alone['completed']})", ""],
            ["epochs trained in total", full["epochs"], "", alone["epochs"], ""],
            ["median epoch, training only (s)", full["epoch_median"], "1.00x", alone["epoch_median"], "1.00x"],
            startup_row("per-trial start-up, median (s)", "startup_median"),
            startup_row("per-trial start-up, max (s): a trial that started a process", "startup_max"),
            ["CPU utilisation (busy core-s / (wall x cores))", full["cpu_util"], "", alone["cpu_util"], ""],
            ["best dev strict F1", full["best"],
             f"{full['best'] / floor:.2f}x the floor ({floor:.3f})" if floor else "", alone["best"], ""],
        ]),
        "",
        "Per-trial start-up: from the moment the trial's slot was free (the sweep's `fit` began, or the previous "
        "trial in the same process made its last report) to the trial's first optimizer step: the scheduler's "
        "decision, starting or resetting the process, imports, data from the feature cache, model build "
        "(`startup_s` in the sweep's trials.csv; `spanfirst.sweep.summary.set_startups`). All start-ups: "
        f"{', '.join(f'{x:.1f}' for x in full['startups'])} s (2 at a time); "
        f"{', '.join(f'{x:.1f}' for x in alone['startups'])} s (one at a time). The floor is the "
        "precision-filtered dictionary of training surface forms on the same dev set.",
    ]
    return "\n".join(lines)
