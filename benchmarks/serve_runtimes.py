"""``pipelines/benchmark.py serve-runtimes``: one trained checkpoint served three ways by ``mlflow
models serve`` (``serving.runtime`` torch, onnx, onnx-int8), over HTTP, on its own dev texts.

Each runtime is registered the way a user registers it (``register_checkpoint`` with
``model_config={"runtime": ...}``: export, the dev-set check against torch, the registry), so the
dev scores in the table are the ones registration logged. The three servers run at once; requests
go to them in interleaved blocks of ``BLOCK`` (the same inputs to each), so other load on the
machine hits every runtime alike, and an idle server's spinning threads touch only a block's first
request. Latency: one-sentence requests; throughput: ``BATCH`` sentences per request.
"""

from __future__ import annotations

import json
import os
import platform
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.report import settle, table
from benchmarks.serve import payload

RUNTIMES = ("torch", "onnx", "onnx-int8")
SINGLE_REQUESTS = 120
BATCH = 32
BATCH_REQUESTS = 12
BLOCK = 10
WARMUP = 5
EXPERIMENT = "bench-serve-runtimes"
LOOSE = 1.0  # serving.max_f1_change for a registration the default refused


def register(label: str, checkpoint: Path, runtime: str, uri: str, work: Path) -> tuple[str, dict[str, float]]:
    """(model URI, the registering run's metrics); a model registered by an earlier call is reused.
    A runtime registration refuses (dev F1 moved past ``serving.max_f1_change``) is registered from a
    copy whose tolerance is :data:`LOOSE`, and marked refused."""
    from spanfirst import checkpoint as ckpt
    from spanfirst import tracking
    from spanfirst.config import apply_overrides, save_config
    from spanfirst.serving.register import register_checkpoint
    from spanfirst.serving.runtime_parity import RuntimeRefused

    name = f"bench-runtime-{label}-{runtime}"
    c = tracking.client(uri)
    try:
        run = c.get_run(c.get_model_version_by_alias(name, tracking.CHAMPION).run_id)
        return f"models:/{name}@champion", {**run.data.metrics,
                                            "refused": float(run.data.tags.get("bench.refused_at_default") == "true")}
    except Exception:  # noqa: BLE001 (not registered yet)
        pass
    saved = ckpt.read(checkpoint)
    score = float(saved.metrics().get("dev_score", 0.0))
    print(f"[serve-runtimes] registering {label} as {runtime} ...", flush=True)
    try:
        reg = register_checkpoint(checkpoint, saved.cfg, [], score, name, uri, EXPERIMENT, {"runtime": runtime})
    except RuntimeRefused as err:
        # timed anyway, so the table shows what the refused runtime would have bought
        print(f"[serve-runtimes] {err}; registering it with serving.max_f1_change {LOOSE} for the timings", flush=True)
        loose = ckpt.copy_model(checkpoint, work / f"{label}-{runtime}-loose")
        save_config(apply_overrides(saved.cfg, {"serving.max_f1_change": LOOSE}), loose / "config.yaml")
        reg = register_checkpoint(loose, saved.cfg, [], score, name, uri, EXPERIMENT, {"runtime": runtime})
        c.set_tag(reg.run_id, "bench.refused_at_default", "true")
    return f"models:/{name}@champion", {**c.get_run(reg.run_id).data.metrics,
                                        "refused": float(c.get_run(reg.run_id).data.tags.get("bench.refused_at_default")
                                                         == "true")}


def dev_requests(checkpoint: Path) -> pd.DataFrame:
    """The checkpoint's dev file as request rows (NER: ``text``; RE: the pair columns)."""
    from spanfirst import checkpoint as ckpt
    from spanfirst.tasks import get_task

    saved = ckpt.read(checkpoint)
    task = get_task(saved.task)
    read = task.read_split(saved.cfg, saved.cfg.data.dev, None)
    if saved.task == "ner":
        return pd.DataFrame({"text": [ex.text for ex in read.examples if ex.text.strip()]})
    return pd.DataFrame([{"text": ex.text, **{f"{side}_{key}": getattr(getattr(ex, side), key)
                                             for side in ("subject", "object") for key in ("start", "end", "type")}}
                         for ex in read.examples])


def timed(clients: dict[str, Any], frame: pd.DataFrame, rows: int, requests: int, offset: int) -> dict[str, np.ndarray]:
    """Seconds per request for each runtime: blocks of ``BLOCK`` requests, runtimes taking turns."""
    out: dict[str, list[float]] = {rt: [] for rt in clients}
    for lo in range(0, requests, BLOCK):
        bodies = [json.dumps(payload(frame.iloc[offset + k * rows : offset + (k + 1) * rows].reset_index(drop=True)), ensure_ascii=False)
                  for k in range(lo, min(lo + BLOCK, requests))]
        for rt, client in clients.items():
            for body in bodies:
                t0 = time.perf_counter()
                status, answer = client.invoke(body)
                out[rt].append(time.perf_counter() - t0)
                if status != 200:
                    raise RuntimeError(f"{rt} server answered {status}: {str(answer)[:400]}")
    return {rt: np.array(v) for rt, v in out.items()}


def bench_model(label: str, checkpoint: Path, work: Path, uri: str) -> dict[str, Any]:
    from spanfirst import checkpoint as ckpt
    from spanfirst.serving.server import ModelServer

    uris, metrics = {}, {}
    for rt in RUNTIMES:
        uris[rt], metrics[rt] = register(label, checkpoint, rt, uri, work)
    frame = dev_requests(checkpoint)
    need = WARMUP + SINGLE_REQUESTS + BATCH * BATCH_REQUESTS
    frame = pd.concat([frame] * (need // len(frame) + 1), ignore_index=True) if len(frame) < need else frame
    load = settle()
    with ExitStack() as stack:
        servers = {rt: stack.enter_context(ModelServer(uris[rt], work / f"{label}-{rt}-server.log",
                                                       {"MLFLOW_TRACKING_URI": uri})) for rt in RUNTIMES}
        clients = {rt: s.client(timeout=600) for rt, s in servers.items()}
        timed(clients, frame, 1, WARMUP, 0)
        single = timed(clients, frame, 1, SINGLE_REQUESTS, WARMUP)
        batched = timed(clients, frame, BATCH, BATCH_REQUESTS, WARMUP + SINGLE_REQUESTS)
    saved = ckpt.read(checkpoint)
    trained = saved.metrics()  # the floor on the same dev rows: filtered dictionary (NER), type pair (RE)
    floor = trained.get("dev_baseline_strict_f1", trained.get("dev_baseline_micro_f1", float("nan")))
    f1 = {"torch": metrics["onnx"]["parity_dev_f1_torch"],
          **{rt: metrics[rt][f"parity_dev_f1_{rt}"] for rt in RUNTIMES[1:]}}
    return {"label": label, "task": saved.task, "backbone": _backbone_name(str(saved.cfg.model.backbone)),
            "dev": Path(str(saved.cfg.data.dev)).name, "floor": floor, "dev_limit": saved.cfg.data.max_dev_examples, "f1": f1,
            "diff": {rt: metrics[rt][f"parity_encoder_max_abs_diff_{rt}"] for rt in RUNTIMES[1:]},
            "refused": {rt: bool(metrics[rt]["refused"]) for rt in RUNTIMES},
            "single": single, "batched": batched, "load": load, "chars": float(frame["text"].str.len().mean())}


def _backbone_name(backbone: str) -> str:
    """A hub name as is; a folder by its name (by its parent's when it is called ``model``)."""
    path = Path(backbone)
    return path.parent.name if path.name == "model" else path.name




def rows_for(r: dict[str, Any]) -> list[list[Any]]:
    ms = lambda xs, q: float(np.percentile(xs, q) * 1000)  # noqa: E731
    tput = lambda xs: BATCH * len(xs) / float(xs.sum())  # noqa: E731
    s, b = r["single"], r["batched"]
    rows = []
    for rt in RUNTIMES:
        rows.append([f"{r['label']}: {rt}{' (refused at 0.5 point)' if r['refused'][rt] else ''}", r["f1"][rt], r["floor"], ms(s[rt], 50), ms(s[rt], 50) / ms(s["torch"], 50),
                     ms(s[rt], 99), ms(s[rt], 99) / ms(s["torch"], 99), tput(b[rt]), tput(b[rt]) / tput(b["torch"]),
                     "" if rt == "torch" else f"{r['diff'][rt]:.1e}"])
    return rows


def _first(limit: int | None) -> str:
    return "" if limit is None else f" (the first {limit} for the dev scores)"


def run(checkpoints: list[tuple[str, Path]], work: Path) -> str:
    """Register (or reuse) every runtime of each checkpoint, serve them, measure; the markdown section."""
    work.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{work.resolve() / 'mlflow.db'}"
    results = [bench_model(label, path.resolve(), work, uri) for label, path in checkpoints]
    models = "; ".join(f"{r['label']}: {r['task'].upper()} on {r['backbone']}, dev {r['dev']}{_first(r['dev_limit'])}, "
                       f"mean {r['chars']:.0f} characters a request row, load average {r['load']:.1f} before serving"
                       for r in results)
    return "\n".join([
        "## Serving runtimes: torch, ONNX, ONNX int8 (issue 30)",
        "",
        f"One trained checkpoint per row group, registered three times with `--runtime torch|onnx|onnx-int8` "
        f"(the dev scores are the ones registration logged when it checked each ONNX runtime against torch) and "
        f"served by three `mlflow models serve` processes at once (1 worker each, every core available to each: "
        f"requests go to one server at a time, in interleaved blocks of {BLOCK}, the same inputs to each). "
        f"{SINGLE_REQUESTS} one-row requests after {WARMUP} warm-up ones, then {BATCH_REQUESTS} requests of "
        f"{BATCH} rows, from the model's dev file in order. {platform.machine()} CPU, {os.cpu_count()} cores "
        f"(AVX2, no AVX-512/VNNI: int8 matrix products here use ONNX Runtime's AVX2 kernels). Models: {models}. "
        "Ratios are to torch in the same run. A runtime that registration refused at the default "
        "`serving.max_f1_change` (half a point of dev F1) is marked so; it was registered with the tolerance raised "
        "only to be timed. Regenerate with `pip install -e '.[onnx]'` then "
        "`python pipelines/benchmark.py serve-runtimes --checkpoints LABEL=CHECKPOINT_DIR ... --workdir DIR`.",
        "",
        table(["model: runtime", "dev F1", "floor", "p50, 1 row (ms)", "p50 ratio", "p99, 1 row (ms)", "p99 ratio",
               f"throughput, {BATCH} per request (rows/s)", "throughput ratio", "encoder max |diff|"],
              [row for r in results for row in rows_for(r)]),
    ])
