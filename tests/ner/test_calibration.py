from pathlib import Path

import pytest
import torch

from spanfirst.ner.calibration import best_threshold
from spanfirst.ner.metrics import strict_f1

QUICKSTART = Path(__file__).resolve().parents[2] / "spanfirst" / "configs" / "quickstart_ner.yaml"


def test_threshold_maximises_dev_f1_on_a_constructed_case():
    gold = [[(0, 3, "PS"), (5, 8, "LC")], [(2, 4, "OG")], []]
    pred = [[(0, 3, "PS", 0.9), (5, 8, "LC", 0.4), (10, 12, "LC", 0.35)],
            [(2, 4, "OG", 0.6), (6, 7, "PS", 0.5)],
            [(1, 2, "PS", 0.2)]]
    t, f1 = best_threshold(gold, pred)
    # brute force over every threshold: keep spans scoring >= t
    def f1_at(th):
        return strict_f1(gold, [[(a, b, ty) for a, b, ty, s in p if s >= th] for p in pred])["f1"]
    brute = max(f1_at(th) for th in {s for p in pred for *_, s in p})
    assert round(f1, 9) == round(brute, 9) == round(f1_at(t), 9) == round(f1_at(0.4), 9)
    assert t == (0.4 + 0.35) / 2  # halfway to the next score down: robust to float noise


def test_no_prediction_keeps_a_default_threshold():
    assert best_threshold([[(0, 1, "X")]], [[]]) == (0.5, 0.0)


def test_task_calibrates_on_dev_reports_there_and_saves_the_threshold():
    from spanfirst.config import apply_overrides, load_config
    from spanfirst.ner.task import NerTask

    cfg = apply_overrides(load_config(QUICKSTART), {"data.max_train_examples": 40, "data.max_dev_examples": 12,
                                                    "ner.score_threshold": "auto"})
    task = NerTask(cfg, NerTask.prepare(cfg))
    assert task.checkpoint_config().ner.score_threshold == 0.3  # never calibrated: the fixed fallback
    torch.manual_seed(0)
    model = task.build_model()
    dev = task.dev_items()
    with torch.no_grad():
        flat, report = task.evaluate(task.predict(model, dev, list(range(len(dev)))))
    cal = report["calibration"]
    assert cal["key"] == "ner.score_threshold" and 0.0 <= cal["threshold"] <= 1.0
    assert flat["strict_f1"] == cal["dev_strict_f1"] and flat["calibrated_threshold"] == cal["threshold"]
    assert task.checkpoint_config().ner.score_threshold == cal["threshold"]
    fixed = NerTask(apply_overrides(cfg, {"ner.score_threshold": 0.25}), task.prepared)
    assert fixed.head.threshold_to_calibrate(fixed.cfg) is None and fixed.checkpoint_config() == fixed.cfg


@pytest.mark.parametrize("head", ["span_first", "global_pointer", "efficient_global_pointer", "gliner"])
def test_every_thresholded_head_is_calibrated_and_decodes_at_its_threshold_what_calibration_scored(head, tmp_path):
    """The dev F1 calibration reports is the F1 of the saved checkpoint decoding at the chosen
    threshold: the calibration decode (every span at or above the floor, capped) loses nothing a
    threshold keeps."""
    from spanfirst import checkpoint as ckpt
    from spanfirst.config import apply_overrides, get_dotted, load_config
    from spanfirst.ner.task import NerTask

    cfg = apply_overrides(load_config(QUICKSTART), {"data.max_train_examples": 40, "data.max_dev_examples": 12,
                                                    "model.head": head, "ner.gliner.type_pooling": "mean"})
    task = NerTask(cfg, NerTask.prepare(cfg))
    key, fallback = task.head.threshold_to_calibrate(task.cfg)
    assert fallback == (0.3 if head == "span_first" else 0.5)  # never calibrated: the fixed rule
    torch.manual_seed(0)
    model = task.build_model()  # untrained: it scores every span alike, the hard case for the cap
    dev = task.dev_items()
    with torch.no_grad():
        flat, report = task.evaluate(task.predict(model, dev, list(range(len(dev)))))
    cal = report["calibration"]
    assert cal["key"] == key and 0.0 <= cal["threshold"] <= 1.0
    saved = task.checkpoint_config()
    assert get_dotted(saved.to_dict(), key) == cal["threshold"]
    ckpt.save(model, task.tokenizer, saved, task.label_info(), tmp_path)
    reloaded, _ = ckpt.read(tmp_path).load_model(NerTask.build_from_checkpoint)
    fixed = NerTask(saved, task.prepared, task.features())
    assert fixed.head.threshold_to_calibrate(fixed.cfg) is None
    with torch.no_grad():
        again, _ = fixed.evaluate(fixed.predict(reloaded, dev, list(range(len(dev)))))
    assert again["strict_f1"] == pytest.approx(flat["strict_f1"]) == pytest.approx(cal["dev_strict_f1"])


def test_calibration_cap_keeps_the_best_spans_per_token_and_says_where_it_is_exact():
    from spanfirst.ner.heads.common import CALIBRATION_FLOOR, CALIBRATION_SPANS_PER_TOKEN, calibration_cap

    text_mask = torch.tensor([[0, 1, 1, 0], [0, 1, 1, 1]], dtype=torch.bool)  # 2 and 3 text tokens
    n0 = 2 * CALIBRATION_SPANS_PER_TOKEN + 3  # sentence 0: three spans over its cap
    scores0 = torch.linspace(0.9, 0.2, n0)
    batch = torch.cat([torch.zeros(n0, dtype=torch.long), torch.ones(2, dtype=torch.long)])
    score = torch.cat([scores0, torch.tensor([0.7, 0.05])])
    keep, exact_from = calibration_cap(batch, score, text_mask)
    assert keep[:n0].sum() == 2 * CALIBRATION_SPANS_PER_TOKEN and keep[:2 * CALIBRATION_SPANS_PER_TOKEN].all()
    assert keep[n0:].all()  # sentence 1 is under its cap
    lost = float(scores0[2 * CALIBRATION_SPANS_PER_TOKEN])
    assert lost < exact_from[0] < lost + 1e-6  # exact only above the best score it lost
    assert exact_from[1] == pytest.approx(CALIBRATION_FLOOR)
