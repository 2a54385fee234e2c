"""``pipelines/benchmark.py train-speed``: what the CPU training settings cost and save on a
pretrained encoder (multilingual-e5-small, the ``bench`` extra): one worker with one thread (the
old default), ``train.threads_per_worker: auto``, then length-grouped batches, then frozen word
embeddings, each a one-epoch run of ``pipelines/train.py`` on the same KLUE-NER sentences."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from benchmarks.encoders import E5_NAME, E5_SHAPE, multilingual_e5_small
from benchmarks.report import table

REPO = Path(__file__).resolve().parents[1]
# label -> --set overrides, each row adding one setting to the row above
SETTINGS: dict[str, dict[str, Any]] = {
    "1 thread (the old default)": {"train.threads_per_worker": 1, "train.group_by_length": False,
                                   "model.freeze_word_embeddings": False},
    "threads_per_worker: auto (2 here)": {"train.threads_per_worker": "auto", "train.group_by_length": False,
                                          "model.freeze_word_embeddings": False},
    "+ group_by_length": {"train.threads_per_worker": "auto", "train.group_by_length": True,
                          "model.freeze_word_embeddings": False},
    "+ freeze_word_embeddings": {"train.threads_per_worker": "auto", "train.group_by_length": True,
                                 "model.freeze_word_embeddings": True},
}


def one_epoch(work: Path, data_dir: Path, encoder: Path, overrides: dict[str, Any], train_examples: int,
              epochs: int) -> dict[str, Any]:
    """A ``pipelines/train.py`` run in its own process (reused when its history is complete)."""
    history = work / "history.jsonl"
    if not (history.is_file() and len(history.read_text(encoding="utf-8").splitlines()) == epochs):
        sets = {"model.backbone": str(encoder), "data.max_train_examples": train_examples, "train.epochs": epochs,
                "data.train": str(data_dir / "klue-ner" / "klue-ner-train.tsv"),
                "data.dev": str(data_dir / "klue-ner" / "klue-ner-dev.tsv"),
                "train.output_dir": str(work), **overrides}
        cmd = [sys.executable, str(REPO / "pipelines" / "train.py"), str(REPO / "spanfirst" / "configs" / "klue_ner_e5_small.yaml")]
        for key, value in sets.items():
            cmd += ["--set", f"{key}={json.dumps(value) if isinstance(value, bool) else value}"]
        load = os.getloadavg()[0]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"training failed:\n{(proc.stdout + proc.stderr)[-3000:]}")
        (work / "load.json").write_text(json.dumps({"load_before": load}), encoding="utf-8")
    rows = [json.loads(line) for line in history.read_text(encoding="utf-8").splitlines()]
    return {"seconds": sum(h["epoch_train_seconds"] for h in rows) / len(rows), "rss": max(h["peak_rss_mb"] for h in rows),
            "f1": rows[-1]["dev_strict_f1"], "load": json.loads((work / "load.json").read_text())["load_before"]}


def run(data_dir: Path, out: Path, encoder: Path | None = None, train_examples: int = 2000, epochs: int = 1) -> str:
    encoder = multilingual_e5_small(data_dir, encoder)
    results = {label: one_epoch(out / f"speed-{i}", data_dir, encoder, overrides, train_examples, epochs)
               for i, (label, overrides) in enumerate(SETTINGS.items())}
    base = results[next(iter(results))]["seconds"]
    rows = [[label, r["seconds"], r["seconds"] / base, train_examples / r["seconds"], r["rss"], r["f1"]]
            for label, r in results.items()]
    loads = ", ".join(f"{r['load']:.1f}" for r in results.values())
    spread = max(r["f1"] for r in results.values()) - min(r["f1"] for r in results.values())
    return "\n".join([
        "## Training speed on a pretrained encoder (issue 27)",
        "",
        f"KLUE-NER, the first {train_examples} training sentences, {epochs} epoch(s) per row, dev: all 500 "
        f"sentences; span-first with {E5_NAME} ({E5_SHAPE}), the recipe of `spanfirst/configs/klue_ner_e5_small.yaml` "
        "(batch 16, one Ray Train worker), each row one `pipelines/train.py` run in its own process, one after "
        "another with nothing else running (a load average above 2 is the run before winding down); each row adds "
        "one setting to the row above. x86_64 CPU, 2 cores; "
        f"load average before each run: {loads}. Regenerate with `python pipelines/benchmark.py train-speed`.",
        "",
        table(["setting", "train s/epoch", "ratio", "examples/s", "peak RSS (MB)", "dev strict F1 after the run"], rows),
        "",
        "`train.threads_per_worker: auto` (the default now) gives a lone worker every core; with length-grouped "
        "batches (`train.group_by_length`, default on) a batch pads to its own longest sentence, which is "
        "about as long as the rest; frozen word embeddings (`model.freeze_word_embeddings`, set in the real-encoder "
        "configs) spare AdamW its update of 96M embedding weights every step and a third of the memory. Dev F1 "
        f"after the epoch moves by at most {spread:.3f} across the rows (one seed, one epoch; the heads table "
        "trains with all three settings over three seeds).",
    ])
