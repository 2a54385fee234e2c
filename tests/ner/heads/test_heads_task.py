"""``model.head`` through the NER task: config, model building, evaluation report per head."""

from pathlib import Path

import pytest
import torch

from spanfirst.config import ConfigError, NerRunConfig, apply_overrides, load_config
from spanfirst.ner.task import NerTask

REPO = Path(__file__).resolve().parents[3]
QUICKSTART = REPO / "spanfirst" / "configs" / "quickstart_ner.yaml"
PEER_HEADS = ["bio", "global_pointer", "efficient_global_pointer", "gliner"]


def test_config_selects_a_head_and_rejects_bad_settings():
    for head in ["span_first", *PEER_HEADS]:
        assert apply_overrides(NerRunConfig(), {"model.head": head}).model.head == head
    with pytest.raises(ConfigError, match="model.head"):
        apply_overrides(NerRunConfig(), {"model.head": "crf"})
    with pytest.raises(ConfigError, match="head_size"):
        apply_overrides(NerRunConfig(), {"ner.global_pointer.head_size": 7})
    with pytest.raises(ConfigError, match="ner.gliner.max_span_widht"):
        apply_overrides(NerRunConfig(), {"ner.gliner.max_span_widht": 7})
    with pytest.raises(ConfigError, match="NER head"):
        apply_overrides(NerRunConfig(), {"task": "re", "model.head": "gliner"})


def make_task(head: str, **overrides) -> NerTask:
    cfg = apply_overrides(load_config(QUICKSTART), {
        "model.head": head, "data.max_train_examples": 40, "data.max_dev_examples": 12, **overrides})
    return NerTask(cfg, NerTask.prepare(cfg))


@pytest.mark.parametrize("head", PEER_HEADS)
def test_each_head_is_built_evaluated_and_reports_only_what_applies(head):
    task = make_task(head)
    torch.manual_seed(0)
    model = task.build_model()
    assert type(model).__name__ == {"bio": "BioTaggerModel", "global_pointer": "GlobalPointerModel",
                                    "efficient_global_pointer": "GlobalPointerModel",
                                    "gliner": "GlinerModel"}[head]
    batch = task.collate(task.train_items()[:4])
    assert torch.isfinite(task.loss(model, batch))
    dev = task.dev_items()
    with torch.no_grad():
        preds = task.predict(model, dev, list(range(len(dev))))
    flat, report = task.evaluate(preds)
    assert {"strict_f1", "lenient_f1", "baseline_strict_f1"} <= flat.keys()
    assert "length_bin_confusion" not in report  # span-first's length head only
    assert set(task.confusion_matrices(task.cfg, task.label_info(), report)) == {"type_confusion"}
    if head == "bio":  # no span candidates, and flat output by construction
        assert not {"candidates_per_sentence", "candidate_recall", "nms_overlap_rate"} & flat.keys()
        assert "candidate_recall_ceiling" not in report
    else:  # every span up to the width is scored: recall is the share of gold that short
        width = 12
        n_text = [sum(it.enc.text_mask) for it in dev]
        assert flat["candidates_per_sentence"] == pytest.approx(
            sum(sum(min(width, n - i) for i in range(n)) for n in n_text) / len(dev))
        gold = [(s, e) for it in dev for s, e, _ in it.gold]
        assert flat["candidate_recall"] == report["candidate_recall_ceiling"] == pytest.approx(
            sum(e - s + 1 <= width for s, e in gold) / len(gold))
        assert 0.0 <= flat["nms_overlap_rate"] <= 1.0


def test_gliner_task_adds_prompt_tokens_and_trains_them_under_lora():
    task = make_task("gliner", **{"model.lora.enabled": True})
    vocab = task.tokenizer.get_vocab()
    assert "[ENT]" in vocab and "[SEP]" in vocab
    info = task.label_info()
    assert info["types"] == task.types and info["gliner_prompt"]["ent_id"] == vocab["[ENT]"]
    model = task.build_model()
    assert model.encoder.get_input_embeddings().num_embeddings == len(task.tokenizer)
    trainable = [n for n, p in model.encoder.named_parameters() if p.requires_grad]
    assert any("lora_" in n for n in trainable) and any("modules_to_save" in n for n in trainable)
    assert torch.isfinite(task.loss(model, task.collate(task.train_items()[:2])))


def test_span_first_report_keeps_its_diagnostics():
    task = make_task("span_first")
    model = task.build_model()
    dev = task.dev_items()
    with torch.no_grad():
        flat, report = task.evaluate(task.predict(model, dev, list(range(len(dev)))))
    assert {"candidates_per_sentence", "candidate_recall", "nms_overlap_rate"} <= flat.keys()
    assert set(task.confusion_matrices(task.cfg, task.label_info(), report)) == {"length_bin_confusion", "type_confusion"}
