"""Serving over HTTP: ``mlflow models serve`` on the quickstart NER and RE models, loaded with the
real unlabeled KLUE-RE sentences (their subject/object entities for RE).

Latency p50/p99 of one-sentence requests and throughput with 32 sentences per request, each next
to the same registered model's in-process ``predict`` (``mlflow.pyfunc.load_model``, schema checks
included) on the same inputs, so the ratio is what HTTP, JSON and the scoring server add. HTTP and
in-process calls alternate request by request, so other load on the machine hits both alike.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.report import table

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "spanfirst" / "configs"
LATENCY_REQUESTS = 300
BATCH = 32
BATCH_REQUESTS = 40


def train_and_register(work: Path, task: str, uri: str) -> str:
    """``pipelines/train.py`` on the quickstart config with ``--register``; reused if already registered."""
    from spanfirst import tracking

    name = f"bench-serve-{task}"
    try:
        tracking.client(uri).get_model_version_by_alias(name, tracking.CHAMPION)
        return f"models:/{name}@champion"
    except Exception:  # noqa: BLE001 (not registered yet)
        pass
    proc = subprocess.run([sys.executable, str(REPO / "pipelines" / "train.py"), str(CONFIGS / f"quickstart_{task}.yaml"),
                           "--set", f"train.output_dir={work / task}", "--register", name, "--tracking-uri", uri],
                          cwd=work, capture_output=True, text=True, env={**os.environ, "RAY_DEDUP_LOGS": "1"})
    if proc.returncode != 0:
        raise RuntimeError(f"training {task} failed:\n{(proc.stdout + proc.stderr)[-4000:]}")
    return f"models:/{name}@champion"


def load_inputs(data_dir: Path) -> pd.DataFrame:
    """The unlabeled KLUE-RE rows as the RE request columns (``text`` alone is the NER request)."""
    from spanfirst.re.reader import read_re

    examples = read_re(data_dir / "klue-re" / "klue-re-unlabeled.csv", require_label=False).examples
    return pd.DataFrame([{"text": ex.text, **{f"{side}_{key}": getattr(getattr(ex, side), key)
                                             for side in ("subject", "object") for key in ("start", "end", "type")}}
                         for ex in examples])


def payload(frame: pd.DataFrame) -> dict[str, Any]:
    split = json.loads(frame.to_json(orient="split", index=False, force_ascii=False))
    return {"dataframe_split": {"columns": split["columns"], "data": split["data"]}}


def measure(server, local, frame: pd.DataFrame, rows: int, requests: int, offset: int) -> dict[str, np.ndarray]:
    """Seconds per request over HTTP and in process, alternating, ``rows`` sentences per request."""
    client = server.client()
    http_s, local_s = [], []
    for k in range(requests):
        part = frame.iloc[offset + k * rows : offset + (k + 1) * rows].reset_index(drop=True)
        body = payload(part)
        t0 = time.perf_counter()
        status, body = client.invoke(body)
        t1 = time.perf_counter()
        if status != 200 or len(body["predictions"]) != len(part):
            raise RuntimeError(f"server answered {status}: {str(body)[:500]}")
        local.predict(part)
        t2 = time.perf_counter()
        http_s.append(t1 - t0)
        local_s.append(t2 - t1)
    client.close()
    return {"http": np.array(http_s), "local": np.array(local_s)}


def bench_task(work: Path, task: str, uri: str, frame: pd.DataFrame, threads: int) -> dict[str, Any]:
    import mlflow
    import torch

    from spanfirst.serving.server import ModelServer

    model_uri = train_and_register(work, task, uri)
    from spanfirst.tasks import get_task
    from spanfirst.tracking import use_uri

    frame = frame[list(get_task(task).serving().columns)]
    torch.set_num_threads(threads)
    with use_uri(uri):
        local = mlflow.pyfunc.load_model(model_uri)
    t0 = time.perf_counter()
    with ModelServer(model_uri, work / f"{task}-server.log",
                     {"MLFLOW_TRACKING_URI": uri, "OMP_NUM_THREADS": str(threads)}) as server:
        startup = time.perf_counter() - t0
        measure(server, local, frame, 1, 20, 0)  # warm-up
        single = measure(server, local, frame, 1, LATENCY_REQUESTS, 20)
        batched = measure(server, local, frame, BATCH, BATCH_REQUESTS, 20 + LATENCY_REQUESTS)
    return {"task": task, "model_uri": model_uri, "startup": startup, "single": single, "batched": batched}


def rows_for(r: dict[str, Any]) -> list[list[Any]]:
    ms = lambda xs, q: float(np.percentile(xs, q) * 1000)  # noqa: E731
    tput = lambda xs: BATCH * len(xs) / float(xs.sum())  # noqa: E731
    s, b = r["single"], r["batched"]
    name = r["task"].upper()
    return [
        [f"{name}: latency p50, 1 sentence (ms)", ms(s["http"], 50), ms(s["local"], 50),
         ms(s["http"], 50) / ms(s["local"], 50)],
        [f"{name}: latency p99, 1 sentence (ms)", ms(s["http"], 99), ms(s["local"], 99),
         ms(s["http"], 99) / ms(s["local"], 99)],
        [f"{name}: throughput, {BATCH} per request (sentences/s)", tput(b["http"]), tput(b["local"]),
         tput(b["http"]) / tput(b["local"])],
        [f"{name}: latency p50, {BATCH} per request (ms)", ms(b["http"], 50), ms(b["local"], 50),
         ms(b["http"], 50) / ms(b["local"], 50)],
    ]


def run(data_dir: Path, work: Path) -> str:
    """Train/register (or reuse) both quickstart models, serve each, measure; the markdown section."""
    import torch

    work.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{work.resolve() / 'mlflow.db'}"
    frame = load_inputs(data_dir)
    need = 20 + LATENCY_REQUESTS + BATCH * BATCH_REQUESTS
    if len(frame) < need:
        raise RuntimeError(f"the unlabeled KLUE-RE file has {len(frame)} rows; the benchmark needs {need}")
    threads = torch.get_num_threads()
    load_before = os.getloadavg()[0]
    results = [bench_task(work, task, uri, frame, threads) for task in ("ner", "re")]
    chars = frame["text"].str.len()
    nice = os.nice(0)
    lines = [
        "## Serving (issue 5)",
        "",
        f"`mlflow models serve -m models:/NAME@champion --env-manager local` (1 uvicorn worker, "
        f"`MLFLOW_ALLOW_PICKLE_DESERIALIZATION=false`) on the quickstart models as `pipelines/train.py "
        f"spanfirst/configs/quickstart_{{ner,re}}.yaml --register NAME` leaves them (tiny offline backbone), "
        f"{platform.machine()} CPU, {os.cpu_count()} cores, torch {threads} thread(s) in the server and in the "
        f"baseline, client on the same machine (keep-alive connection, `dataframe_split` requests). Load: the "
        f"unlabeled KLUE-RE sentences in file order (mean {chars.mean():.0f} characters, max {chars.max()}); "
        f"NER gets the sentence, RE the sentence with its subject and object entities. "
        f"{LATENCY_REQUESTS} one-sentence requests after 20 warm-up ones, then {BATCH_REQUESTS} requests of "
        f"{BATCH} sentences. Baseline: the same registered model loaded in the benchmark process "
        "(`mlflow.pyfunc.load_model(...).predict`, same inputs, calls alternating with the HTTP ones); ratio = "
        "HTTP / in-process. Regenerate with `python pipelines/benchmark.py serve` (trains both quickstart "
        "models first, a few minutes; `--workdir DIR` reuses them). "
        f"Load average before the run: {load_before:.1f}; benchmark process niceness {nice} "
        "(other work on the machine inflates every figure below).",
        "",
        table(["measure", "HTTP (mlflow models serve)", "in-process predict (baseline)", "ratio"],
              [row for r in results for row in rows_for(r)]),
        "",
        table(["measure", "NER", "RE"], [
            ["server start: process spawn -> /ping answers (s)", results[0]["startup"], results[1]["startup"]],
        ]),
    ]
    return "\n".join(lines)
