"""Training texts longer than the model's window: read as overlapping windows, every entity
learnt from and counted once, short texts aligned exactly as before."""

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


def test_training_reads_long_texts_as_windows_unless_told_to_truncate(tiny_backbone, tmp_path):
    import json

    from spanfirst.config import RunConfig, apply_overrides
    from spanfirst.ner.task import NerTask

    ex = long_example()
    data = tmp_path / "docs.jsonl"
    data.write_text(json.dumps({"text": ex.text, "entities": [{"start": s.start, "end": s.end, "type": s.type}
                                                              for s in ex.entities]}, ensure_ascii=False) + "\n",
                    encoding="utf-8")
    base = {"task": "ner", "data.train": str(data), "data.dev": str(data), "model.backbone": str(tiny_backbone),
            "model.max_length": 24}
    for mode, windowed in (("window", 1), ("truncate", 0)):
        cfg = apply_overrides(RunConfig(), {**base, "data.long_train_texts": mode})
        task = NerTask(cfg, NerTask.prepare(cfg))
        assert task.train_report.examples_windowed == windowed
        assert (len(task.train_aligned) > 1) == bool(windowed)
        assert task.dev_report.examples_truncated == 1 and len(task.dev_aligned) == 1  # dev: scored truncated
