"""A real Ray Train run (2 CPU workers, gloo DDP) on KLUE-NER data; the best checkpoint
reloads and predicts exactly what the run's own evaluation saw."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from spanfirst.config import apply_overrides, load_config
from spanfirst.data.readers import read_ner
from spanfirst.evaluate import evaluate_checkpoint
from spanfirst.ner.predictor import NerPredictor
from spanfirst.train.trainer import run_training

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = REPO / "spanfirst" / "configs" / "quickstart_ner.yaml"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(tmp_path_factory, shared_data):
    out = tmp_path_factory.mktemp("ner-run")
    cfg = apply_overrides(load_config(QUICKSTART), {
        "data.train": str(shared_data / "klue-ner" / "klue-ner-train.tsv"),
        "data.dev": str(shared_data / "klue-ner" / "klue-ner-dev.tsv"),
        "data.max_train_examples": 1500, "data.max_dev_examples": 200,
        "train.epochs": 6, "train.output_dir": str(out),
    })
    return cfg, run_training(cfg)


def test_ray_train_run_learns(trained):
    cfg, result = trained
    assert result.best_dir is not None and (result.best_dir / "heads.safetensors").is_file()
    epochs = [h["epoch"] for h in result.history]
    assert epochs == list(range(1, len(epochs) + 1)) and len(epochs) >= 2
    best = result.best_metrics
    assert best["dev_score"] == max(h["dev_score"] for h in result.history)  # the best epoch, not the last
    assert best["dev_strict_f1"] > 0.2, best
    assert 0 < best["dev_candidate_recall"] <= 1 and best["dev_candidates_per_sentence"] > 0
    assert "dev_baseline_strict_f1" in best
    saved = load_config(result.best_dir / "config.yaml")  # what was fitted and calibrated is saved
    assert saved.ner.fitted and isinstance(saved.ner.score_threshold, float)
    assert saved.ner.score_threshold == pytest.approx(best["dev_calibrated_threshold"])
    # threads_per_worker "auto": this machine's CPUs shared by the run's 2 workers
    assert cfg.train.threads_per_worker == "auto" and saved.train.threads_per_worker == max(1, os.cpu_count() // 2)


def test_checkpoint_reloads_and_predicts_what_the_run_evaluated(trained, tmp_path):
    cfg, result = trained
    saved = json.loads((result.best_dir / "metrics.json").read_text())
    # the exact dev subset the run saw
    dev = read_ner(cfg.data.dev, limit=cfg.data.max_dev_examples)
    sub = tmp_path / "dev.jsonl"
    from spanfirst.data.readers import write_span_jsonl

    write_span_jsonl(dev, sub)
    flat, report = evaluate_checkpoint(result.best_dir, str(sub), tmp_path / "eval")
    assert flat["strict_f1"] == pytest.approx(saved["dev_strict_f1"], abs=1e-9)
    assert (tmp_path / "eval" / "length_bin_confusion.png").is_file()
    assert (tmp_path / "eval" / "type_confusion.json").is_file()
    pred = NerPredictor.load(result.best_dir)
    texts = [e.text for e in dev[:50]]
    assert pred.predict(texts) == NerPredictor.load(result.best_dir).predict(texts)


def test_predict_pipeline_writes_entities(trained, tmp_path):
    cfg, result = trained
    inp = tmp_path / "texts.txt"
    inp.write_text("가수 김흥국이 왕십리에서 콘서트를 열었다.\n서울시는 내일 오후 3시에 발표한다.\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    proc = subprocess.run([sys.executable, str(REPO / "pipelines" / "predict.py"), str(result.best_dir),
                           "--input", str(inp), "--output", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    types = json.loads((result.best_dir / "labels.json").read_text())["types"]
    assert [r["text"] for r in rows] == inp.read_text(encoding="utf-8").splitlines()
    for row in rows:
        for ent in row["entities"]:
            assert row["text"][ent["start"]:ent["end"]] == ent["text"]
            assert ent["type"] in types and 0.0 <= ent["score"] <= 1.0
