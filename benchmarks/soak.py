"""A bounded soak of ``mlflow models serve``: the NER and RE quickstart champions, each served on
127.0.0.1 and hit by concurrent clients with a fixed mix of requests: valid ones (1 and 8 rows, an
empty list, which gets an empty answer) and invalid ones (wrong column, a text over
``max_text_chars``, more rows than ``max_batch_size``, bytes that are not UTF-8, a wrong content
type), for a fixed number of requests or a time limit, whichever comes first.

Recorded per model: p50/p99 latency of every kind of request, sent alone (the valid ones only) and in
the mix, answers by HTTP status, and the server's memory (resident set of its whole process tree) after a warm-up and
at the end. What must hold: no 5xx at all, every invalid request a 4xx, every valid one a 200,
and memory growth within :data:`MEMORY_BOUND`.
"""

from __future__ import annotations

import json
import os
import platform
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.report import table

CLIENTS = 4
REQUESTS = 800  # per model, over all clients
ALONE_REQUESTS = 200  # per model: its valid requests only, before the mix
CPU_REPEATS = 20  # per request kind, for the server's CPU per request with and without the request guard
TIME_LIMIT_S = 240.0  # per model
WARMUP = 20
MEMORY_BOUND = (1.25, 64 * 2**20)  # growth allowed: at most 25% of the warmed-up size or 64 MiB, the larger


@dataclass
class Case:
    name: str
    body: bytes
    content_type: str = "application/json"
    expect: str = "4xx"  # "200", "4xx", or "200 or 4xx" (an empty request: an empty answer or a refusal)

    @property
    def valid(self) -> bool:
        return self.expect == "200"


@dataclass
class Tally:
    statuses: dict[str, Counter] = field(default_factory=dict)
    latencies: dict[str, list[float]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, case: Case, status: int, seconds: float) -> None:
        with self.lock:
            self.statuses.setdefault(case.name, Counter())[status] += 1
            self.latencies.setdefault(case.name, []).append(seconds)


MEGABYTE = 1_000_000


def _json(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False).encode("utf-8")


def cases(task: str, texts: list[str], re_rows: list[dict[str, Any]], max_text_chars: int,
          max_batch_size: int) -> list[Case]:
    """The request mix of one model: valid requests of 1 and 8 rows (at most ``max_batch_size``), an
    empty one, then one of each invalid kind."""
    rows = min(8, max_batch_size)
    if task == "ner":
        one, many = {"inputs": texts[:1]}, {"inputs": texts[1 : 1 + rows]}
        wrong_column = {"dataframe_records": [{"txt": texts[0]}]}
        too_long = {"inputs": ["가" * max(max_text_chars + 1, MEGABYTE // 3)]}  # 3 bytes each in UTF-8
        too_many = {"inputs": [texts[0]] * (max_batch_size * 40)}
    else:
        one, many = {"dataframe_records": re_rows[:1]}, {"dataframe_records": re_rows[1 : 1 + rows]}
        wrong_column = {"dataframe_records": [{k if k != "subject_start" else "subj_start": v
                                               for k, v in re_rows[0].items()}]}
        too_long = {"dataframe_records": [{**re_rows[0], "text": re_rows[0]["text"] + " " * max(max_text_chars + 1, MEGABYTE)}]}
        too_many = {"dataframe_records": re_rows[:1] * (max_batch_size * 40)}
    return [
        Case("valid, 1 row", _json(one), "application/json", "200"),
        Case(f"valid, {rows} rows", _json(many), "application/json", "200"),
        # nothing asked: NER answers an empty list, RE's schema check refuses a request with no columns
        Case("empty list", _json({"inputs": []}), "application/json", "200 or 4xx"),
        Case("wrong column", _json(wrong_column)),
        Case(f"1 MB text (over max_text_chars {max_text_chars:,})", _json(too_long)),
        Case(f"{max_batch_size * 40:,} rows (max_batch_size {max_batch_size})", _json(too_many)),
        Case("not UTF-8", b'{"inputs": ["\xff\xfe\xc3\x28"]}'),
        Case("wrong content type", _json(one), content_type="text/plain"),
    ]


def tree_rss(pid: int) -> int:
    """Resident bytes of a process and all its descendants (the scoring server runs in a child)."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def post(port: int, case: Case, timeout: float = 120.0) -> int:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", "/invocations", body=case.body, headers={"Content-Type": case.content_type})
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def run_clients(client: Any, clients: int) -> float:
    """Run ``client`` in ``clients`` threads at once; the wall seconds until all are done."""
    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - started


def soak(server: Any, mix: list[Case], requests: int = REQUESTS, clients: int = CLIENTS,
         time_limit_s: float = TIME_LIMIT_S, warmup: int = WARMUP) -> dict[str, Any]:
    """Hit a running :class:`~spanfirst.serving.server.ModelServer` with ``mix``, round robin, from
    ``clients`` threads; returns statuses and latencies by case and memory before and after."""
    valid = [c for c in mix if c.valid]
    for k in range(warmup):
        post(server.port, valid[k % len(valid)])
    rss_before = tree_rss(server.proc.pid)
    tally, counter, lock = Tally(), [0], threading.Lock()
    deadline = time.monotonic() + time_limit_s

    def client() -> None:
        while time.monotonic() < deadline:
            with lock:
                n = counter[0]
                if n >= requests:
                    return
                counter[0] += 1
            case = mix[n % len(mix)]
            t0 = time.perf_counter()
            try:
                status = post(server.port, case)
            except OSError:
                status = 0  # no answer at all
            tally.add(case, status, time.perf_counter() - t0)

    wall = run_clients(client, clients)
    return {"tally": tally, "rss_before": rss_before, "rss_after": tree_rss(server.proc.pid), "wall": wall,
            "sent": sum(sum(c.values()) for c in tally.statuses.values()), "mix": mix, "alive": server.alive()}


def verdict(result: dict[str, Any]) -> list[str]:
    """What went wrong (empty: the soak passed)."""
    problems = []
    for case in result["mix"]:
        statuses = result["tally"].statuses.get(case.name, Counter())
        for status, n in statuses.items():
            if status >= 500 or status == 0:
                problems.append(f"{case.name}: {n} answer(s) with status {status or 'none'}")
            elif case.expect == "200" and status != 200:
                problems.append(f"{case.name}: {n} answer(s) with status {status}")
            elif case.expect == "4xx" and not 400 <= status < 500:
                problems.append(f"{case.name}: {n} answer(s) with status {status}, not a 4xx")
            elif not (status == 200 or 400 <= status < 500):
                problems.append(f"{case.name}: {n} answer(s) with status {status}")
    before, after = result["rss_before"], result["rss_after"]
    ratio, slack = MEMORY_BOUND
    if after > max(before * ratio, before + slack):
        problems.append(f"memory grew from {before / 2**20:.0f} MiB to {after / 2**20:.0f} MiB")
    if not result["alive"]:
        problems.append("the server died")
    return problems


def percentile(values: list[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(values, q)) if values else float("nan")


def p50_ms(result: dict[str, Any], case: str) -> float:
    return percentile(result["tally"].latencies.get(case, []), 50) * 1000


def server_cpu_ms(server: Any, mix: list[Case], repeats: int = CPU_REPEATS) -> dict[str, tuple[int, float]]:
    """Each request of ``mix`` sent ``repeats`` times in a row: (its status, the server's CPU
    milliseconds per request, user + system over all its processes)."""
    import psutil

    def cpu() -> float:
        root = psutil.Process(server.proc.pid)
        return sum(sum(p.cpu_times()[:2]) for p in [root, *root.children(recursive=True)])

    for case in mix:
        post(server.port, case)
    out = {}
    for case in mix:
        before = cpu()
        status = [post(server.port, case) for _ in range(repeats)][-1]
        out[case.name] = (status, (cpu() - before) / repeats * 1000)
    return out


def layouts(cores: int) -> list[tuple[int, int | None]]:
    """Server layouts soaked: (workers, torch threads per worker; None = unset, every core). One
    worker as ``mlflow models serve`` starts by default, then one single-threaded worker per core
    (the layout ``serve-workers`` measures best for concurrent clients on a CPU)."""
    return [(1, None), (cores, 1)] if cores > 1 else [(1, None)]


def layout_name(workers: int, threads: int | None) -> str:
    return f"{workers} worker{'s' if workers > 1 else ''} x " + (f"{threads} thread" if threads else "threads unset")


def section(results: dict[str, dict[str, Any]], alone: dict[str, dict[str, Any]], limits: dict[str, int],
            cpu: dict[str, dict[str, dict[str, tuple[int, float]]]]) -> str:
    """``results`` / ``alone``: the mix / the valid requests only, keyed by "TASK, layout"; ``cpu``:
    task -> "off" / "on" -> :func:`server_cpu_ms`."""
    cpu_rows = [[task.upper(), name, off[0], f"{off[1]:.1f}", on[0], f"{on[1]:.1f}", on[1] / off[1]]
                for task, by_guard in cpu.items() for name in by_guard["on"]
                for off, on in [(by_guard["off"][name], by_guard["on"][name])]]
    rows, ratios = [], []
    for key, r in results.items():
        for phase, res in (("valid requests only", alone[key]), ("the mix", r)):
            for case in res["mix"]:
                statuses = res["tally"].statuses.get(case.name, Counter())
                lat = res["tally"].latencies.get(case.name, [])
                rows.append([key, phase, case.name, sum(statuses.values()),
                             ", ".join(f"{s}: {n}" for s, n in sorted(statuses.items())),
                             f"{percentile(lat, 50) * 1000:.0f}", f"{percentile(lat, 99) * 1000:.0f}"])
        one = r["mix"][0].name
        ratios.append(f"{key}: {p50_ms(r, one):.0f} / {p50_ms(alone[key], one):.0f} ms = "
                      f"{p50_ms(r, one) / p50_ms(alone[key], one):.2f}x")
    memory = [[key, r["sent"], f"{r['wall']:.0f}", f"{r['rss_before'] / 2**20:.0f}",
               f"{r['rss_after'] / 2**20:.0f}", f"{r['rss_after'] / max(r['rss_before'], 1):.2f}x",
               "; ".join(verdict(r)) or "passed"] for key, r in results.items()]
    loads = ", ".join(f"{r['load']:.1f}" for r in alone.values())
    return "\n".join([
        "## Serving under load (issues 16 and 30)",
        "",
        f"A bounded soak of `mlflow models serve` (`--env-manager local`, on 127.0.0.1) on the NER and RE quickstart "
        f"champions, each in two server layouts (`-w WORKERS`, `OMP_NUM_THREADS`): {CLIENTS} concurrent clients, a "
        f"new connection per request. Each model and layout is first sent its valid requests only ({ALONE_REQUESTS} "
        f"after {WARMUP} warm-up ones), then the whole mix below ({REQUESTS} requests or {TIME_LIMIT_S:.0f} s, "
        "whichever comes first; the requests cycle through it). The invalid ones are refused by the model's request "
        "guard (`spanfirst/serving/request_guard.py`) before MLflow parses them. Limits as served: "
        + ", ".join(f"`{k}` {v:,}" for k, v in limits.items())
        + f". {platform.machine()} CPU, {os.cpu_count()} cores, load average before each server: {loads}. "
        "Regenerate with `python pipelines/benchmark.py soak`.",
        "",
        table(["model, server", "traffic", "request", "sent", "answers by status", "p50 (ms)", "p99 (ms)"], rows),
        "",
        f"Valid one-row requests, p50 under the mix / sent alone (goal: at most 1.5x): {'; '.join(ratios)}.",
        "",
        table(["model, server", "requests", "wall (s)", "server memory after warm-up (MiB)", "at the end (MiB)", "ratio",
               "verdict"], memory),
        "",
        f"What each request costs the server (1 worker, threads unset), with the request guard off "
        f"(`SPANFIRST_REQUEST_GUARD=0`: MLflow parses every request and the model refuses it) and on: CPU "
        f"milliseconds per request (user + system, all the server's processes), each request sent {CPU_REPEATS} "
        "times in a row, nothing else in flight.",
        "",
        table(["model", "request", "guard off: status", "CPU ms", "guard on: status", "CPU ms", "ratio"], cpu_rows),
        "",
        f"Memory is the resident set of the server's whole process tree (the mix only); the bound is "
        f"{MEMORY_BOUND[0]:.2f}x or +{MEMORY_BOUND[1] // 2**20} MiB, the larger. A verdict other than passed lists "
        "every 5xx, every invalid request not answered 4xx and every valid one not answered 200 (an empty "
        "request may get either).",
    ])


def run(data_dir: Path, work: Path) -> str:
    """Train and register both quickstart models (reused from ``work``), soak each in each layout; the
    markdown section."""
    from benchmarks.report import settle
    from benchmarks.serve import load_inputs, train_and_register
    from spanfirst.serving.request_guard import DISABLE
    from spanfirst.serving.server import ModelServer
    from spanfirst.serving.settings import DEFAULT_CONFIG

    work.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{work / 'mlflow.db'}"
    frame = load_inputs(data_dir)
    texts = frame["text"].tolist()[:64]
    re_rows = json.loads(frame.head(64).to_json(orient="records", force_ascii=False))
    limits = {k: DEFAULT_CONFIG[k] for k in ("max_batch_size", "max_text_chars", "max_request_bytes")}
    models = {task: train_and_register(work, task, uri) for task in ("ner", "re")}
    results, alone, cpu = {}, {}, {}
    for task, model in models.items():
        mix = cases(task, texts, re_rows, limits["max_text_chars"], limits["max_batch_size"])
        for guard in ("off", "on"):
            env = {"MLFLOW_TRACKING_URI": uri, DISABLE: "0" if guard == "off" else "1"}
            with ModelServer(model, work / f"cpu-{task}-guard-{guard}.log", env) as server:
                cpu.setdefault(task, {})[guard] = server_cpu_ms(server, mix)
    for workers, threads in layouts(os.cpu_count() or 1):
        env = {"MLFLOW_TRACKING_URI": uri, **({"OMP_NUM_THREADS": str(threads)} if threads else {})}
        for task, model in models.items():
            key = f"{task.upper()}, {layout_name(workers, threads)}"
            mix = cases(task, texts, re_rows, limits["max_text_chars"], limits["max_batch_size"])
            load = settle()
            with ModelServer(model, work / f"soak-{task}-w{workers}.log", env, workers=workers) as server:
                alone[key] = {**soak(server, [c for c in mix if c.valid], requests=ALONE_REQUESTS), "load": load}
                results[key] = soak(server, mix, warmup=0)
    return section(results, alone, limits, cpu)
