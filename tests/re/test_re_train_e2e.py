"""A real Ray Train run (2 CPU workers, gloo DDP) of the quickstart RE config on the bundled
KLUE-RE sample: it beats the type-pair baseline on dev micro F1, and the best checkpoint
reloads and predicts exactly the probabilities the run's own evaluation saw."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from spanfirst.config import load_config
from spanfirst.re.metrics import micro_f1
from spanfirst.re.predictor import RePredictor
from spanfirst.re.reader import read_re
from spanfirst.train.trainer import run_training

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = REPO / "spanfirst" / "configs" / "quickstart_re.yaml"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    if not (REPO / "spanfirst" / "resources" / "sample" / "klue_re_train.jsonl").is_file():
        pytest.skip("the bundled KLUE-RE sample is missing (run pipelines/make_re_sample.py)")
    out = tmp_path_factory.mktemp("re-run")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SPANFIRST_CACHE", str(out / "cache"))
        cfg = load_config(QUICKSTART, [f"train.output_dir={out / 'run'}"])
        assert cfg.task == "re" and cfg.train.num_workers == 2 and not cfg.train.use_gpu
        return cfg, run_training(cfg)


def test_ray_train_run_beats_the_type_pair_baseline(trained):
    cfg, result = trained
    assert result.best_dir is not None and (result.best_dir / "heads.safetensors").is_file()
    epochs = [h["epoch"] for h in result.history]
    assert epochs == list(range(1, len(epochs) + 1)) and len(epochs) >= 2
    best = result.best_metrics
    assert best["dev_score"] == max(h["dev_score"] for h in result.history)  # the best epoch, not the last
    assert best["dev_micro_f1"] > best["dev_baseline_micro_f1"], best
    assert 0.0 < best["dev_auprc"] <= 1.0
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]


def test_checkpoint_reloads_and_predicts_what_the_run_evaluated(trained):
    cfg, result = trained
    saved = json.loads((result.best_dir / "metrics.json").read_text(encoding="utf-8"))
    run_preds = saved["report"]["predictions"]
    labels = json.loads((result.best_dir / "labels.json").read_text(encoding="utf-8"))["labels"]
    dev = read_re(cfg.data.dev, limit=cfg.data.max_dev_examples).examples
    assert [p["id"] for p in run_preds] == [ex.id for ex in dev]
    probs = RePredictor.load(result.best_dir).predict_proba(dev)
    np.testing.assert_allclose(probs, np.asarray([p["probs"] for p in run_preds]), atol=2e-6)  # saved rounded to 1e-6
    gold = [labels.index(ex.label) for ex in dev]
    assert micro_f1(gold, probs.argmax(1), labels.index("no_relation"))["f1"] == pytest.approx(saved["dev_micro_f1"])
