from spanfirst.ner.calibration import best_threshold
from spanfirst.ner.metrics import strict_f1


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
    from pathlib import Path

    import torch

    from spanfirst.config import apply_overrides, load_config
    from spanfirst.ner.task import NerTask

    quickstart = Path(__file__).resolve().parents[2] / "spanfirst" / "configs" / "quickstart_ner.yaml"
    cfg = apply_overrides(load_config(quickstart), {"data.max_train_examples": 40, "data.max_dev_examples": 12,
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
