"""The SpERT-layout converter the end-to-end benchmark reads CoNLL04 with: offsets into the joined
text, entities from BILOU and BIO tags, and read back by the platform's doccano reader."""

from __future__ import annotations

import json

import pytest

from benchmarks.spert_json import tag_entities, to_doccano, to_doccano_record
from spanfirst.data.annotation_tools import read_documents

TOKENS = ["John", "Smith", "works", "for", "Acme", "Corp", "in", "Paris", "."]


@pytest.mark.parametrize("tags", [
    ["B-Peop", "L-Peop", "O", "O", "B-Org", "L-Org", "O", "U-Loc", "O"],  # BILOU
    ["B-Peop", "I-Peop", "O", "O", "B-Org", "I-Org", "O", "B-Loc", "O"],  # BIO
])
def test_tags_give_the_entities_in_order(tags):
    assert tag_entities(tags) == [{"type": "Peop", "start": 0, "end": 2}, {"type": "Org", "start": 4, "end": 6},
                                  {"type": "Loc", "start": 7, "end": 8}]


def test_adjacent_entities_of_one_type_stay_apart():
    assert tag_entities(["U-Loc", "U-Loc", "B-Loc", "I-Loc"]) == [
        {"type": "Loc", "start": 0, "end": 1}, {"type": "Loc", "start": 1, "end": 2},
        {"type": "Loc", "start": 2, "end": 4}]


def test_a_record_becomes_a_doccano_document_the_reader_takes(tmp_path):
    spert = {"tokens": TOKENS, "entities": [{"type": "Peop", "start": 0, "end": 2}, {"type": "Org", "start": 4, "end": 6},
                                             {"type": "Loc", "start": 7, "end": 8}],
             "relations": [{"type": "Work_For", "head": 0, "tail": 1}, {"type": "OrgBased_In", "head": 1, "tail": 2}],
             "orig_id": 17}
    doc = to_doccano_record(spert, 0, tmp_path / "x.json")
    assert doc["text"] == "John Smith works for Acme Corp in Paris ."
    assert [doc["text"][e["start_offset"]:e["end_offset"]] for e in doc["entities"]] == ["John Smith", "Acme Corp", "Paris"]
    (tmp_path / "c.json").write_text(json.dumps([spert]), encoding="utf-8")
    read = read_documents(to_doccano(tmp_path / "c.json", tmp_path / "c.jsonl"), "doccano")
    (only,) = read.documents
    assert sorted((only.entities[r.subject].type, r.label, only.entities[r.object].type) for r in only.relations) == [
        ("Org", "OrgBased_In", "Loc"), ("Peop", "Work_For", "Org")]


def test_a_relation_to_a_missing_entity_is_refused(tmp_path):
    bad = {"tokens": TOKENS, "tags": ["U-Peop"] + ["O"] * 8, "relations": [{"type": "Kill", "head": 0, "tail": 3}]}
    with pytest.raises(ValueError, match="record 4: relation"):
        to_doccano_record(bad, 4, tmp_path / "x.json")
