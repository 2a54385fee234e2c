"""The data summary every run reports: counts, nesting, what the reader decided."""

from __future__ import annotations

import json

from spanfirst.data.readers import read_ner
from spanfirst.data.summary import file_digest, ner_summary, nesting_counts, summary_lines
from spanfirst.data.types import Example, Span


def test_nesting_counts_inside_and_crossing():
    ex = Example("abcdefghij", [Span(0, 6, "A"), Span(1, 3, "B"), Span(4, 8, "C"), Span(0, 6, "D")])
    # B lies inside A (and D); A/D are the same span with two types (not inside each other); C crosses A and D
    assert nesting_counts(ex) == (1, 2)


def test_ner_summary_of_a_nested_file(tmp_path):
    path = tmp_path / "nested.jsonl"
    rows = [{"tokens": ["the", "human", "T", "cells"], "entities": [{"start": 1, "end": 4, "type": "cell"},
                                                                   {"start": 2, "end": 4, "type": "cell"}]},
            {"tokens": ["nothing", "here"], "entities": []}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    notes = {}
    examples = read_ner(path, notes=notes)
    summary = ner_summary(path, examples, notes)
    assert summary["format"] == "token_jsonl" and summary["offsets"] == "exclusive"
    assert (summary["examples"], summary["entities"], summary["nested_entities"]) == (2, 2, 1)
    assert summary["entities_per_type"] == {"cell": 2} and summary["examples_without_entities"] == 1
    assert summary["digest"] == file_digest(path) and len(summary["digest"]) == 16
    assert summary["entity_chars"]["max"] == len("human T cells")
    text = "\n".join(summary_lines(summary))
    assert "nested entities: 1" in text and "entities per type: cell 2" in text
