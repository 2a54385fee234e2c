"""Straight from the annotation tool and back: a Label Studio export (with emoji, so its UTF-16
offsets differ from Python's) and a doccano file train a real Ray Train run; ``pipelines/predict.py``
writes the model's entities as both tools' import files, which read again as the predictions."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from spanfirst.config import apply_overrides, load_config
from spanfirst.data.readers import read_ner
from spanfirst.tasks import get_task
from spanfirst.train.trainer import run_training

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "spanfirst" / "resources" / "sample"
EMOJI = "🙂 "  # one code point, two UTF-16 units

pytestmark = pytest.mark.slow


def label_studio_export(examples, path: Path) -> None:
    """Tasks as Label Studio exports them: every third text led by an emoji, offsets in UTF-16 units."""
    tasks = []
    for k, ex in enumerate(examples):
        lead = EMOJI if k % 3 == 0 else ""
        text, shift = lead + ex.text, len(lead) + (1 if lead else 0)
        result = [{"id": f"r{j}", "from_name": "label", "to_name": "text", "type": "labels",
                   "value": {"start": s.start + shift, "end": s.end + shift, "text": ex.text[s.start:s.end],
                             "labels": [s.type]}} for j, s in enumerate(ex.entities)]
        tasks.append({"id": k + 1, "data": {"text": text},
                      "annotations": [{"id": k + 1, "result": result, "was_cancelled": False}]})
    path.write_text(json.dumps(tasks, ensure_ascii=False), encoding="utf-8")


def doccano_file(examples, path: Path) -> None:
    path.write_text("".join(json.dumps({"text": ex.text, "label": [[s.start, s.end, s.type] for s in ex.entities]},
                                       ensure_ascii=False) + "\n" for ex in examples), encoding="utf-8")


def predict(best_dir: Path, inp: Path, out: Path, *extra: str) -> None:
    proc = subprocess.run([sys.executable, str(REPO / "pipelines" / "predict.py"), str(best_dir), "--input", str(inp),
                           "--output", str(out), *extra], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr


def test_export_train_predict_import_read_again(tmp_path):
    train, dev = read_ner(SAMPLE / "klue_ner_train.jsonl")[:600], read_ner(SAMPLE / "klue_ner_dev.jsonl")[:100]
    export, dev_file = tmp_path / "label_studio_export.json", tmp_path / "doccano_dev.jsonl"
    label_studio_export(train, export)
    doccano_file(dev, dev_file)
    cfg = apply_overrides(load_config(REPO / "spanfirst" / "configs" / "quickstart_ner.yaml"), {
        "data.train": str(export), "data.dev": str(dev_file), "train.num_workers": 1, "train.epochs": 4,
        "train.output_dir": str(tmp_path / "run")}, "test")
    summary = get_task("ner").prepare(cfg)["data"]
    assert summary["train"]["format"] == "label_studio" and summary["train"]["offset_unit"] == "utf16"
    assert summary["train"]["entities"] == sum(len(e.entities) for e in train)
    assert summary["dev"]["format"] == "doccano" and summary["dev"]["offset_unit"] == "code_points"
    result = run_training(cfg)
    assert result.best_metrics["dev_strict_f1"] > 0.05, result.best_metrics

    # the export itself is the input: every task is pre-annotated
    plain, ls_out, doccano_out = tmp_path / "pred.jsonl", tmp_path / "ls_import.json", tmp_path / "doccano.jsonl"
    predict(result.best_dir, export, plain)
    predict(result.best_dir, export, ls_out, "--output-format", "label-studio")
    predict(result.best_dir, export, doccano_out, "--output-format", "doccano")
    expected = [(row["text"], sorted((e["start"], e["end"], e["type"]) for e in row["entities"]))
                for row in map(json.loads, plain.read_text(encoding="utf-8").splitlines())]
    assert len(expected) == len(train) and sum(len(ents) for _, ents in expected) > 50
    assert any(ents for text, ents in expected if text.startswith(EMOJI))

    tasks = json.loads(ls_out.read_text(encoding="utf-8"))
    version = str(result.best_dir)
    assert all(t["predictions"][0]["model_version"] == version for t in tasks)
    scores = [r["score"] for t in tasks for r in t["predictions"][0]["result"]]
    assert scores and all(0.0 <= s <= 1.0 for s in scores)
    # a team accepts the predictions in Label Studio: they become the annotations it exports
    for t in tasks:
        t["annotations"] = [{"id": 1, "result": t["predictions"][0]["result"], "was_cancelled": False}]
    accepted = tmp_path / "accepted.json"
    accepted.write_text(json.dumps(tasks, ensure_ascii=False), encoding="utf-8")
    for path in (accepted, doccano_out):
        notes = {}
        got = [(ex.text, sorted((s.start, s.end, s.type) for s in ex.entities)) for ex in read_ner(path, notes=notes)]
        # tasks with no entity predicted read back as tasks without entities
        assert got == expected, path.name
        assert notes["offset_unit"] == ("utf16" if path == accepted else "code_points")
