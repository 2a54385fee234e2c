"""A real Ray Train run (2 CPU workers, gloo DDP) with a peer head on the bundled KLUE-NER sample:
the loop trains it, keeps its best checkpoint, and that checkpoint evaluates to what the run saw
and serves through the pyfunc model class."""

import json
from pathlib import Path

import pytest

from spanfirst.config import apply_overrides, load_config
from spanfirst.data.readers import read_ner, write_span_jsonl
from spanfirst.evaluate import evaluate_checkpoint
from spanfirst.ner.predictor import NerPredictor
from spanfirst.train.trainer import run_training

REPO = Path(__file__).resolve().parents[3]
QUICKSTART = REPO / "spanfirst" / "configs" / "quickstart_ner.yaml"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("gliner-run")
    cfg = apply_overrides(load_config(QUICKSTART), {
        "model.head": "gliner", "ner.gliner.type_pooling": "mean",
        "data.max_train_examples": 300, "data.max_dev_examples": 60,
        "train.num_workers": 2, "train.epochs": 2, "train.early_stopping_patience": 0,
        "train.output_dir": str(out),
    })
    return cfg, run_training(cfg)


def test_ray_train_runs_the_head_and_keeps_the_best_checkpoint(trained):
    cfg, result = trained
    assert [h["epoch"] for h in result.history] == [1, 2]
    assert result.history[1]["train_loss"] < result.history[0]["train_loss"]
    best = result.best_metrics
    assert best["dev_score"] == max(h["dev_score"] for h in result.history)
    # every span up to the width is scored: far more candidates than span-first's top-k
    assert best["dev_candidates_per_sentence"] > 100 and 0.9 < best["dev_candidate_recall"] <= 1.0
    labels = json.loads((result.best_dir / "labels.json").read_text(encoding="utf-8"))
    assert labels["types"] and len(labels["gliner_prompt"]["pieces"]) == len(labels["types"])
    report = json.loads((result.best_dir / "metrics.json").read_text(encoding="utf-8"))["report"]
    assert "length_bin_confusion" not in report and "type_confusion" in report


def test_checkpoint_evaluates_to_what_the_run_saw_and_serves(trained, tmp_path):
    cfg, result = trained
    saved = json.loads((result.best_dir / "metrics.json").read_text(encoding="utf-8"))
    dev = read_ner(cfg.data.dev, limit=cfg.data.max_dev_examples)
    write_span_jsonl(dev, tmp_path / "dev.jsonl")
    flat, _report = evaluate_checkpoint(result.best_dir, str(tmp_path / "dev.jsonl"), tmp_path / "eval")
    assert flat["strict_f1"] == pytest.approx(saved["dev_strict_f1"], abs=1e-9)
    assert flat["candidates_per_sentence"] == pytest.approx(saved["dev_candidates_per_sentence"])
    assert not (tmp_path / "eval" / "length_bin_confusion.json").exists()

    import pandas as pd

    from spanfirst.serving.load import load_serving_model

    texts = [e.text for e in dev[:20]]
    direct = NerPredictor.load(result.best_dir).predict(texts)
    served = load_serving_model(str(result.best_dir)).predict(pd.DataFrame({"text": texts}))
    assert list(served["entities"]) == direct
