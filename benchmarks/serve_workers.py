"""``pipelines/benchmark.py serve-workers``: how to split a CPU machine's cores between ``mlflow
models serve`` workers (``-w``, each a process with its own copy of the model) and PyTorch's threads
in each (``OMP_NUM_THREADS``), measured on a trained checkpoint under concurrent clients.

Each layout serves the checkpoint's torch registration (the one ``serve-runtimes`` makes, reused
from the same work folder) in turn, alone on the machine: :data:`CLIENTS` clients send one-row
requests, then requests of :data:`BATCH` rows, from the model's dev file. Figures: requests (rows)
per second, p50/p99 of the one-row requests, the server's memory (all its processes), each as a
ratio to the first layout (1 worker using every core).
"""

from __future__ import annotations

import json
import os
import platform
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.report import settle, table
from benchmarks.serve import payload
from benchmarks.serve_runtimes import dev_requests, register
from benchmarks.soak import run_clients, tree_rss

CLIENTS = 4
SINGLE_REQUESTS = 160
BATCH = 32
BATCH_REQUESTS = 16
WARMUP = 4  # per worker


def layouts(cores: int) -> list[tuple[int, int | None]]:
    """(workers, threads per worker; None = PyTorch's default, every core in every worker)."""
    return [(1, cores), (cores, 1), (cores, None)] if cores > 1 else [(1, 1)]


def hammer(port: int, bodies: list[str], clients: int) -> tuple[float, np.ndarray]:
    """Send ``bodies`` from ``clients`` threads (one keep-alive connection each); (wall s, latencies)."""
    from spanfirst.serving.server import Client

    latencies: list[float] = []
    lock, next_body = threading.Lock(), iter(bodies)

    def client() -> None:
        conn = Client("127.0.0.1", port, timeout=600)
        try:
            while True:
                with lock:
                    body = next(next_body, None)
                if body is None:
                    return
                t0 = time.perf_counter()
                status, answer = conn.invoke(body)
                took = time.perf_counter() - t0
                if status != 200:
                    raise RuntimeError(f"the server answered {status}: {str(answer)[:400]}")
                with lock:
                    latencies.append(took)
        finally:
            conn.close()

    return run_clients(client, clients), np.array(latencies)


def bodies(frame: pd.DataFrame, rows: int, requests: int, offset: int) -> list[str]:
    return [json.dumps(payload(frame.iloc[offset + k * rows : offset + (k + 1) * rows].reset_index(drop=True)),
                       ensure_ascii=False) for k in range(requests)]


def measure(model_uri: str, uri: str, frame: pd.DataFrame, workers: int, threads: int | None,
            log: Path) -> dict[str, Any]:
    from spanfirst.serving.server import ModelServer

    env = {"MLFLOW_TRACKING_URI": uri}
    if threads is not None:
        env |= {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    load = settle()
    with ModelServer(model_uri, log, env, workers=workers) as server:
        hammer(server.port, bodies(frame, 1, WARMUP * workers * CLIENTS, 0), CLIENTS)
        single_wall, single = hammer(server.port, bodies(frame, 1, SINGLE_REQUESTS, 0), CLIENTS)
        batch_wall, _ = hammer(server.port, bodies(frame, BATCH, BATCH_REQUESTS, SINGLE_REQUESTS), CLIENTS)
        rss = tree_rss(server.proc.pid)
    return {"workers": workers, "threads": threads, "load": load, "rps": SINGLE_REQUESTS / single_wall,
            "p50": float(np.percentile(single, 50)) * 1000, "p99": float(np.percentile(single, 99)) * 1000,
            "rows_per_s": BATCH * BATCH_REQUESTS / batch_wall, "rss_mib": rss / 2**20}


def run(checkpoints: list[tuple[str, Path]], work: Path) -> str:
    work.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{work.resolve() / 'mlflow.db'}"
    cores = os.cpu_count() or 1
    rows, notes = [], []
    for label, checkpoint in checkpoints:
        model_uri, _ = register(label, checkpoint.resolve(), "torch", uri, work)
        frame = dev_requests(checkpoint.resolve())
        need = SINGLE_REQUESTS + BATCH * BATCH_REQUESTS
        frame = pd.concat([frame] * (need // len(frame) + 1), ignore_index=True) if len(frame) < need else frame
        results = [measure(model_uri, uri, frame, w, t, work / f"{label}-w{w}-t{t}-server.log")
                   for w, t in layouts(cores)]
        base = results[0]
        for r in results:
            threads = f"{r['threads']}" if r["threads"] is not None else f"unset ({cores})"
            rows.append([label, r["workers"], threads, f"{r['rps']:.1f}", r["rps"] / base["rps"], f"{r['p50']:.0f}",
                         r["p50"] / base["p50"], f"{r['p99']:.0f}", f"{r['rows_per_s']:.1f}",
                         r["rows_per_s"] / base["rows_per_s"], f"{r['rss_mib']:.0f}", r["rss_mib"] / base["rss_mib"]])
        loads = ", ".join(f"{r['load']:.1f}" for r in results)
        notes.append(f"{label}: load average before each layout {loads}")
    return "\n".join([
        "## Serving workers and threads on a CPU (issue 30)",
        "",
        f"`mlflow models serve -w WORKERS` with `OMP_NUM_THREADS=THREADS` (torch runtime), each layout served alone: "
        f"{CLIENTS} concurrent clients (a keep-alive connection each) send {SINGLE_REQUESTS} one-row requests, then "
        f"{BATCH_REQUESTS} requests of {BATCH} rows, from the model's dev file; warm-up first. Memory: the resident "
        f"set of all the server's processes at the end. {platform.machine()} CPU, {cores} cores; "
        f"{'; '.join(notes)}. Ratios are to the first layout of each model. Regenerate with "
        "`python pipelines/benchmark.py serve-workers --checkpoints LABEL=CHECKPOINT_DIR ... --workdir DIR` (the "
        "same DIR as serve-runtimes reuses its registrations).",
        "",
        table(["model", "workers", "threads per worker", "1-row requests/s", "ratio", "p50 (ms)", "p50 ratio",
               "p99 (ms)", f"rows/s, {BATCH} per request", "ratio", "memory (MiB)", "memory ratio"], rows),
    ])
