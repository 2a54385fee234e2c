"""A tiny-backbone RE model (no training): task evaluation, checkpoint save -> load -> identical
predictions, the predictor API, the submission CSV, evaluate_checkpoint and the ensemble pipeline."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from spanfirst.config import config_from_dict
from spanfirst.data.types import RelationExample
from spanfirst.re.baseline import TypePairBaseline
from spanfirst.re.markers import marker_vocab
from spanfirst.re.metrics import micro_f1
from spanfirst.re.reader import write_re_jsonl
from spanfirst import checkpoint
from spanfirst.re.task import ReTask, softmax

SETUPS = {
    "typed_entity-attention": {"re": {"marker_style": "typed_entity", "pooling": "attention", "use_cls": True}},
    "typed_punct-marker-lora": {"re": {"marker_style": "typed_punct", "pooling": "marker"},
                                "model": {"lora": {"enabled": True, "r": 4, "alpha": 8}}},
    "typed_punct-marker-type_prior": {"re": {"marker_style": "typed_punct", "pooling": "marker", "type_prior": True}},
}


def build(backbone: Path, examples: list[RelationExample], labels: list[str], setup: dict, train_file: Path):
    """(task, model, config) on the tiny backbone, heads randomly initialised (no training)."""
    raw = {"task": "re", "model": {"backbone": str(backbone), "max_length": 64, **setup.get("model", {})},
           "re": setup["re"], "data": {"train": str(train_file)}}
    cfg = config_from_dict(raw)
    types = sorted({s.type for ex in examples for s in (ex.subject, ex.object)})
    prepared = {"train": examples, "dev": examples, "labels": labels, "entity_types": types,
                "marker_tokens": marker_vocab(cfg.re.marker_style, types), "backbone_path": str(backbone),
                "skipped": {"train": 0, "dev": 0}}
    task = ReTask(cfg, prepared)
    torch.manual_seed(0)
    model = task.build_model()
    with torch.no_grad():  # make the head's output depend visibly on the input
        model.classifier.weight.normal_(0.0, 1.0)
    model.eval()
    return task, model, cfg


@pytest.fixture(scope="module")
def saved(re_backbone, examples, labels, tmp_path_factory) -> dict[str, dict]:
    """Per setup: the checkpoint folder, the task's evaluation and the in-memory probabilities."""
    root = tmp_path_factory.mktemp("re-ckpt")
    train_file = root / "train.jsonl"
    write_re_jsonl(examples, train_file)
    out = {}
    for name, setup in SETUPS.items():
        task, model, cfg = build(re_backbone, examples, labels, setup, train_file)
        items = task.dev_items()
        preds = task.predict(model, items, list(range(len(items))))
        flat, report = task.evaluate(preds)
        ckpt = checkpoint.save(model, task.tokenizer, cfg, task.label_info(), root / name,
                              metrics={**{f"dev_{k}": v for k, v in flat.items()}, "report": report})
        probs = softmax(np.asarray([p.logits for p in preds], dtype=np.float64))
        out[name] = {"ckpt": ckpt, "flat": flat, "report": report, "probs": probs, "task": task, "train": train_file}
    return out


def test_task_evaluation_report(saved, examples, labels):
    for entry in saved.values():
        flat, report = entry["flat"], entry["report"]
        for key in ("micro_f1", "auprc", "baseline_micro_f1", "micro_precision", "micro_recall"):
            assert isinstance(flat[key], float) and 0.0 <= flat[key] <= 1.0
        base = TypePairBaseline().fit(examples).predict(examples)
        expected = micro_f1([labels.index(ex.label) for ex in examples], [labels.index(b) for b in base], 0)["f1"]
        assert flat["baseline_micro_f1"] == pytest.approx(expected) and 0.0 < expected < 1.0
        assert np.asarray(report["confusion"]).shape == (len(labels), len(labels))
        assert set(report["per_class"]) == set(labels)
        assert len(report["predictions"]) == len(labels) and len(report["predictions"][0]["probs"]) == len(labels)
        assert report["windows"]["dev"]["examples"] == len(labels)
        task = entry["task"]
        assert task.confusion_matrices(task.cfg, task.label_info(), report)["relation_confusion"][1] == labels


@pytest.mark.parametrize("name", list(SETUPS))
def test_checkpoint_reloads_and_predicts_identically(saved, examples, labels, name):
    from spanfirst.re.predictor import RePredictor

    entry = saved[name]
    saved_labels = json.loads((entry["ckpt"] / "labels.json").read_text(encoding="utf-8"))
    assert saved_labels["task"] == "re" and saved_labels["labels"] == labels
    assert saved_labels["marker_style"] == SETUPS[name]["re"]["marker_style"]
    predictor = RePredictor.load(entry["ckpt"])
    if saved_labels["marker_tokens"]:  # the reloaded tokenizer knows the added markers as single tokens
        for token in saved_labels["marker_tokens"]:
            assert predictor.tokenizer.convert_tokens_to_ids(token) != predictor.tokenizer.unk_token_id
    probs = predictor.predict_proba(examples)
    np.testing.assert_allclose(probs, entry["probs"], atol=1e-6)
    records = [{"text": ex.text, "subject": {"start": ex.subject.start, "end": ex.subject.end, "type": ex.subject.type},
                "object": {"start": ex.object.start, "end": ex.object.end, "type": ex.object.type}} for ex in examples]
    out = predictor.predict(records)
    assert [o["label"] for o in out] == [labels[i] for i in entry["probs"].argmax(1)]
    assert list(out[0]["probs"]) == labels and sum(out[0]["probs"].values()) == pytest.approx(1.0)
    model, _tok = checkpoint.read(entry["ckpt"]).load_model(ReTask.build_from_checkpoint)  # the heads fit exactly
    assert not model.training


def test_submission_csv(saved, examples, labels, tmp_path):
    from spanfirst.re.predictor import write_submission

    probs = saved["typed_entity-attention"]["probs"]
    path = write_submission(tmp_path / "sub.csv", [ex.id for ex in examples], probs, labels)
    with path.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["id", "pred_label", "probs"] and len(rows) == len(examples)
    assert rows[0]["id"] == examples[0].id and rows[0]["pred_label"] == labels[int(probs[0].argmax())]
    assert json.loads(rows[0]["probs"]) == pytest.approx(probs[0].tolist(), abs=1e-6)


def test_predict_file_on_unlabelled_rows(saved, examples, tmp_path):
    from spanfirst.re.predictor import predict_file

    entry = saved["typed_entity-attention"]
    rows = tmp_path / "unlabelled.csv"
    with rows.open("w", encoding="utf-8-sig", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "sentence", "subject_entity", "object_entity", "label"])
        for ex in examples:
            ent = [{"word": ex.text[s.start : s.end], "start_idx": s.start, "end_idx": s.end - 1, "type": s.type}
                   for s in (ex.subject, ex.object)]
            writer.writerow([ex.id, ex.text, repr(ent[0]), repr(ent[1]), "100"])
    out = predict_file(entry["ckpt"], rows, tmp_path / "sub.csv")
    with out.open(encoding="utf-8") as f:
        got = np.asarray([json.loads(r["probs"]) for r in csv.DictReader(f)])
    np.testing.assert_allclose(got, entry["probs"], atol=1e-6)


def test_evaluate_checkpoint_writes_report_and_png(saved, examples, tmp_path):
    from spanfirst.evaluate import evaluate_checkpoint

    entry = saved["typed_entity-attention"]
    dev = tmp_path / "dev.jsonl"
    write_re_jsonl(examples, dev)
    flat, report = evaluate_checkpoint(entry["ckpt"], str(dev), tmp_path / "eval", train=str(entry["train"]))
    assert flat["micro_f1"] == pytest.approx(entry["flat"]["micro_f1"])
    assert flat["auprc"] == pytest.approx(entry["flat"]["auprc"], abs=1e-6)
    assert (tmp_path / "eval" / "report.json").is_file()
    assert (tmp_path / "eval" / "relation_confusion.png").is_file()
    assert json.loads((tmp_path / "eval" / "relation_confusion.json").read_text())["labels"] == report["labels"]


def test_ensemble_pipeline(saved, examples, labels, tmp_path, capsys):
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "ensemble_pipeline", Path(__file__).resolve().parents[2] / "pipelines" / "ensemble.py")
    pipeline = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(pipeline)
    dev = tmp_path / "dev.jsonl"
    write_re_jsonl(examples, dev)
    ckpts = [str(saved[name]["ckpt"]) for name in ("typed_entity-attention", "typed_punct-marker-lora")]
    assert pipeline.main([*ckpts, "--data", str(dev), "--rule", "weighted", "--weights", "search",
                          "--out", str(tmp_path / "ens")]) == 0
    report = json.loads((tmp_path / "ens" / "ensemble_report.json").read_text(encoding="utf-8"))
    assert [row["name"] for row in report["table"]][-1] == "ensemble (weighted)"
    assert len(report["weights"]) == 2 and "optimistic" in report["weights_from"]
    best_member = max(row["micro_f1"] for row in report["table"][:-1])
    assert report["table"][-1]["micro_f1"] >= best_member  # the search includes each member alone
    assert "ensemble (weighted)" in capsys.readouterr().out
    with (tmp_path / "ens" / "submission.csv").open(encoding="utf-8") as f:
        assert len(list(csv.DictReader(f))) == len(examples)
    soft = saved["typed_entity-attention"]["probs"] / 2 + saved["typed_punct-marker-lora"]["probs"] / 2
    assert pipeline.main([*ckpts, "--data", str(dev), "--rule", "soft", "--out", str(tmp_path / "soft")]) == 0
    with (tmp_path / "soft" / "submission.csv").open(encoding="utf-8") as f:
        got = np.asarray([json.loads(r["probs"]) for r in csv.DictReader(f)])
    np.testing.assert_allclose(got, soft, atol=2e-6)
    assert pipeline.main([*ckpts, "--data", str(dev), "--rule", "soft", "--weights", "0.5,0.5"]) == 2


def test_with_the_type_prior_an_untrained_classifier_is_the_type_pair_baseline(re_backbone, examples, labels,
                                                                              tmp_path):
    """re.type_prior: the logits start as log p(relation | type pair), so a classifier that adds
    nothing yet predicts what the type-pair baseline predicts, on seen pairs and on unseen ones."""
    train, dev = examples[:4] + examples[:1], examples  # dev's last two type pairs never occur in train
    # (the first example twice: an overall majority label, so neither side breaks a tie)
    train_file = tmp_path / "train.jsonl"
    write_re_jsonl(train, train_file)
    cfg = config_from_dict({"task": "re", "model": {"backbone": str(re_backbone), "max_length": 64},
                            "re": {"marker_style": "typed_punct", "type_prior": True, "type_prior_strength": 0.5},
                            "data": {"train": str(train_file)}})  # weak smoothing: pairs seen once decide
    types = sorted({s.type for ex in train for s in (ex.subject, ex.object)})
    task = ReTask(cfg, {"train": train, "dev": dev, "labels": labels, "entity_types": types, "marker_tokens": [],
                        "backbone_path": str(re_backbone), "skipped": {"train": 0, "dev": 0}})
    model = task.build_model()
    with torch.no_grad():
        model.classifier.weight.zero_(), model.classifier.bias.zero_()
    preds = task.predict(model, task.dev_items(), list(range(len(dev))))
    predicted = [labels[int(np.argmax(p.logits))] for p in sorted(preds, key=lambda p: p.index)]
    assert predicted == TypePairBaseline().fit(train).predict(dev)
    assert {ex.object.type for ex in dev} - set(types)  # an unseen type took the prior's last row
