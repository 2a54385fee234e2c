"""Texts longer than the model's window: training reads them as overlapping windows, every entity
learnt from and counted once, short texts aligned exactly as before; dev scores them whole, as the
predictor reads them."""

from __future__ import annotations

import pytest

from spanfirst.data.alignment import token_to_char_span
from spanfirst.data.types import Example, Span
from spanfirst.ner.features import align_examples
from spanfirst.ner.windows import TextWindows

SENTENCE = "가수 김흥국이 왕십리에서 콘서트를 열었다."
TYPES = ["LC", "PS"]


def long_example(repeats: int = 12) -> Example:
    text = " ".join([SENTENCE] * repeats)
    spans, at = [], 0
    for _ in range(repeats):
        spans += [Span(at + 3, at + 6, "PS"), Span(at + 8, at + 11, "LC")]
        at += len(SENTENCE) + 1
    return Example(text, spans, id="doc-1")


@pytest.fixture(scope="module")
def tok(tiny_backbone):
    from spanfirst.backbone import load_tokenizer

    return load_tokenizer(str(tiny_backbone))


def test_a_long_text_becomes_windows_that_hold_every_entity(tok):
    ex, short = long_example(), Example(SENTENCE, [Span(3, 6, "PS")])
    assert [ex.text[s.start:s.end] for s in ex.entities[:2]] == ["김흥국", "왕십리"]
    windows = TextWindows(tok, 24, 0)
    items, report = align_examples(tok, [short, ex], TYPES, 24, windows=windows)
    plain, plain_report = align_examples(tok, [short, ex], TYPES, 24)
    assert items[0] == plain[0]  # a text that fits: the same features as without windows
    doc = items[1:]
    assert len(doc) > 3 and all(len(it.enc.input_ids) <= 24 for it in doc)
    learnt = set()
    for it in doc:
        for s, e, t in it.gold:  # each window's gold is a real entity of the text, whole
            a, b = token_to_char_span(it.enc, s, e)
            assert Span(a, b, TYPES[t - 1]) in ex.entities
            learnt.add((a, b))
    assert learnt == {(s.start, s.end) for s in ex.entities}  # none lost
    n = len(ex.entities) + 1
    assert report.as_dict() == {"entities": n, "aligned": n, "truncated": 0, "unalignable": 0,
                                "boundary_mismatch": 0, "examples_truncated": 0, "examples_windowed": 1}
    # truncated instead: most of the document's entities are never seen
    assert plain_report.examples_truncated == 1 and plain_report.truncated > len(ex.entities) // 2


def test_an_entity_no_window_holds_whole_is_counted_as_truncated(tok):
    text = " ".join([SENTENCE] * 6)
    ex = Example(text, [Span(0, len(text) - 1, "PS"), Span(3, 6, "PS")])  # one entity as long as the text
    items, report = align_examples(tok, [ex], TYPES, 24, windows=TextWindows(tok, 24, 0))
    assert len(items) > 1
    assert (report.entities, report.aligned, report.truncated) == (2, 1, 1)
    assert all(len(it.gold) <= 1 for it in items)


def long_task(tiny_backbone, tmp_path, **overrides):
    import json

    from spanfirst.config import NerRunConfig, apply_overrides
    from spanfirst.ner.task import NerTask

    examples = [long_example(), Example(SENTENCE, [Span(3, 6, "PS")])]
    data = tmp_path / "docs.jsonl"
    data.write_text("".join(json.dumps({"text": ex.text, "entities": [{"start": s.start, "end": s.end, "type": s.type}
                                                                      for s in ex.entities]}, ensure_ascii=False) + "\n"
                            for ex in examples), encoding="utf-8")
    cfg = apply_overrides(NerRunConfig(), {"task": "ner", "data.train": str(data), "data.dev": str(data),
                                        "model.backbone": str(tiny_backbone), "model.max_length": 24,
                                        "ner.score_threshold": 0.0, **overrides})
    return NerTask(cfg, NerTask.prepare(cfg)), examples


def test_training_reads_long_texts_as_windows_unless_told_to_truncate(tiny_backbone, tmp_path):
    for mode, windowed in (("window", 1), ("truncate", 0)):
        task, _ = long_task(tiny_backbone, tmp_path, **{"data.long_train_texts": mode})
        assert task.train_report.examples_windowed == windowed
        assert (len(task.train_aligned) > 2) == bool(windowed)
        assert task.dev_report.examples_windowed == 1 and len(task.dev_aligned) > 2  # dev: always whole texts


def test_dev_scores_whole_long_texts_exactly_as_the_predictor_reads_them(tiny_backbone, tmp_path):
    import torch

    from spanfirst.ner.predictor import NerPredictor

    task, examples = long_task(tiny_backbone, tmp_path)
    torch.manual_seed(0)
    model = task.build_model().eval()
    items = task.dev_items()
    with torch.no_grad():
        preds = task.predict(model, items, list(range(len(items))))
    aligned, merged = task.per_text(preds)
    assert [p.index for p in merged] == [0, 1] and len(aligned) == 2
    served = NerPredictor(model, task.tokenizer, task.cfg, {"types": task.types}).predict([ex.text for ex in examples])
    assert [sorted((a, b, t) for a, b, t, _ in p.char_spans) for p in merged] == \
        [sorted((e["start"], e["end"], e["type"]) for e in ents) for ents in served]
    assert any(a > len(examples[0].text) * 3 // 4 for a, _, _, _ in merged[0].char_spans)  # read to the end
    # every gold entity of the long text is placed once, in whole-text token positions
    assert len(aligned[0].gold) == len(examples[0].entities) == len(set(aligned[0].gold))
    flat, report = task.evaluate(preds)
    assert report["strict"]["n_gold"] == sum(len(ex.entities) for ex in examples)
    assert 0.0 <= report["candidate_recall"] <= 1.0 and flat["candidate_recall"] == report["candidate_recall"]
