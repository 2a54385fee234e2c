"""The quickstart sweep as a user runs it (``python pipelines/sweep.py``, its own process): wall
time, trials per hour, per-trial fixed overhead, and the machine's CPU utilisation meanwhile
(busy core-seconds from /proc/stat over wall time x cores). Baseline: a one-trial sweep of the
same space, whose trial starts with the machine to itself (the overhead without contention)."""

from __future__ import annotations

import csv
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from spanfirst.bench.report import table

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = REPO / "search_spaces" / "quickstart.yaml"


def cpu_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of all cores from the first line of /proc/stat."""
    with open("/proc/stat", encoding="ascii") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    busy = user + nice + system + irq + softirq + steal
    return busy, busy + idle + iowait


def timed_sweep(work: Path, *args: str, space: Path = QUICKSTART) -> dict[str, Any]:
    """Run the sweep CLI on ``space`` in ``work``; wall time, CPU use and its trials table."""
    work.mkdir(parents=True, exist_ok=True)
    cores = os.cpu_count() or 1
    hz = os.sysconf("SC_CLK_TCK")
    load_before = os.getloadavg()[0]
    busy0, _ = cpu_jiffies()
    started, t0 = time.time(), time.perf_counter()
    proc = subprocess.run([sys.executable, str(REPO / "pipelines" / "sweep.py"), str(space), *args,
                           "--storage", str(work / "runs"), "--tracking-uri", f"sqlite:///{work / 'mlflow.db'}"],
                          cwd=work, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    busy1, _ = cpu_jiffies()
    if proc.returncode != 0:
        raise RuntimeError(f"sweep failed:\n{(proc.stdout + proc.stderr)[-4000:]}")
    exp_dir = next((work / "runs").glob(f"{space.stem}-*/trials.csv")).parent
    rows = list(csv.DictReader((exp_dir / "trials.csv").open(encoding="utf-8")))
    overheads = [float(r["overhead_s"]) for r in rows if r["overhead_s"]]
    return {
        "wall": wall, "started": started, "exp_dir": exp_dir, "rows": rows,
        "trials": len(rows), "cores": cores, "load_before": load_before,
        "cpu_util": (busy1 - busy0) / hz / (wall * cores),
        "stopped": sum(r["status"] == "stopped_by_asha" for r in rows),
        "completed": sum(r["status"] == "completed" for r in rows),
        "overhead_mean": statistics.mean(overheads) if overheads else float("nan"),
        "overhead_min": min(overheads, default=float("nan")), "overhead_max": max(overheads, default=float("nan")),
        "epochs": sum(int(r["epochs"]) for r in rows), "best": max(float(r["score"]) for r in rows if r["score"]),
        "tail": proc.stdout.strip().splitlines()[-3:],
    }


def run(work: Path) -> str:
    """Run the quickstart and the one-trial baseline; return the markdown section."""
    full = timed_sweep(work / "quickstart")
    alone = timed_sweep(work / "one-trial", "--num-samples", "1")
    per_hour = full["trials"] / full["wall"] * 3600
    lines = [
        "## Sweeps (issue 4)",
        "",
        f"`python pipelines/sweep.py` (search_spaces/quickstart.yaml: span-first NER on the bundled KLUE-NER "
        f"sample, tiny offline backbone, 1 Train worker per trial, 2 trials at a time, ASHA grace 1 / "
        f"reduction 2 / 4 epochs), {platform.machine()} CPU, {full['cores']} cores, run as a user runs it "
        "(its own process, Ray start and model registration included). Regenerate with "
        "`python pipelines/benchmark.py sweep` (about 8 minutes). Load average before the run: "
        f"{full['load_before']:.1f} (other work on the machine inflates every figure below).",
        "",
        table(["measure", "quickstart sweep", "one-trial sweep (baseline)", "ratio"], [
            ["wall time (s)", full["wall"], alone["wall"], full["wall"] / alone["wall"]],
            ["trials (ASHA-stopped / completed)", f"{full['trials']} ({full['stopped']} / {full['completed']})",
             f"{alone['trials']} (0 / {alone['completed']})", ""],
            ["epochs trained in total", full["epochs"], alone["epochs"], ""],
            ["trials per hour", per_hour, alone["trials"] / alone["wall"] * 3600, ""],
            ["per-trial overhead, mean (s): trial start -> first step", full["overhead_mean"],
             alone["overhead_mean"], full["overhead_mean"] / alone["overhead_mean"]],
            ["per-trial overhead, min-max (s)", f"{full['overhead_min']:.1f}-{full['overhead_max']:.1f}",
             f"{alone['overhead_min']:.1f}", ""],
            ["CPU utilisation (busy core-s / (wall x cores))", full["cpu_util"], alone["cpu_util"], ""],
            ["best dev strict F1", full["best"], alone["best"], ""],
        ]),
        "",
        "Per-trial overhead is measured in each trial (Train controller, first report) as the time from the "
        "trial function's start to the first report minus that epoch's training and evaluation time: Train "
        "controller and worker process start, imports, tokenisation/alignment of the data in the worker, "
        "model build. With two trials sharing two cores, one trial's start-up competes with the other's "
        "training, hence the ratio to the trial that ran alone.",
    ]
    return "\n".join(lines)
