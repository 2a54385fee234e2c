"""Annotation-tool exports (doccano, Label Studio, brat): read as documents, offsets in the tool's
unit, NER examples and RE pairs made from one file, and the field mapping of NER records."""

from __future__ import annotations

import json

import pytest

from spanfirst.config import ConfigError, apply_overrides, config_class
from spanfirst.data.annotation_tools import read_documents, sniff
from spanfirst.data.documents import PairRules, relation_rows, sentence_starts
from spanfirst.data.offsets import decide_unit, index_to_utf16, utf16_to_index, Mention
from spanfirst.data.readers import detect_format, read_ner
from spanfirst.data.types import Span
from spanfirst.errors import DataError
from spanfirst.re.reader import read_re, read_re_as_configured

# "Kim works at Acme in Seoul. Lee met Kim." entities: Kim(0,3) PER, Acme(13,17) ORG, Seoul(21,26) LOC,
# Lee(28,31) PER, Kim(36,39) PER
TEXT = "Kim works at Acme in Seoul. Lee met Kim."


def jsonl(tmp_path, name, records):
    path = tmp_path / name
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def doccano_re(tmp_path):
    ents = [{"id": 1, "label": "PER", "start_offset": 0, "end_offset": 3},
            {"id": 2, "label": "ORG", "start_offset": 13, "end_offset": 17},
            {"id": 3, "label": "LOC", "start_offset": 21, "end_offset": 26},
            {"id": 4, "label": "PER", "start_offset": 28, "end_offset": 31}]
    rels = [{"id": 1, "from_id": 1, "to_id": 2, "type": "works_for"},
            {"id": 2, "from_id": 2, "to_id": 3, "type": "located_in"},
            {"id": 3, "from_id": 4, "to_id": 9, "type": "knows"}]  # entity 9 does not exist
    return jsonl(tmp_path, "doccano_re.jsonl", [{"id": 7, "text": TEXT, "entities": ents, "relations": rels}])


def test_doccano_ner_export_reads_with_label_or_labels(tmp_path):
    path = jsonl(tmp_path, "doccano.jsonl", [
        {"id": 1, "text": TEXT, "label": [[0, 3, "PER"], [13, 17, "ORG"]], "Comments": []},
        {"id": 2, "text": "Lee met Kim.", "labels": [[8, 11, "PER"]]},
    ])
    notes = {}
    examples = read_ner(path, notes=notes)
    assert notes["format"] == "doccano" and notes["entities"] == 3 and notes["relations"] == 0
    assert examples[0].entities == [Span(0, 3, "PER"), Span(13, 17, "ORG")] and examples[0].id == "1"
    assert examples[1].entities == [Span(8, 11, "PER")]


def test_doccano_bad_label_names_line_and_field(tmp_path):
    path = jsonl(tmp_path, "bad.jsonl", [{"text": TEXT, "label": [[0, 3, "PER"]]}, {"text": TEXT, "label": [[0, 3]]}])
    with pytest.raises(DataError, match=r"bad.jsonl, line 2, field 'label\[0\]': expected \[start_offset, end_offset, label\]"):
        read_ner(path)


def test_doccano_relations_pairs_counted_by_hand(tmp_path):
    path = doccano_re(tmp_path)
    result = read_re(path)
    notes = result.notes
    # 4 entities, no overlaps: 4 * 3 = 12 ordered pairs; 2 annotated; the third names a missing entity
    assert notes["format"] == "doccano" and notes["entities"] == 4 and notes["relations"] == 3
    assert notes["pairs_made"] == 12 and notes["positives"] == 2 and notes["negatives_kept"] == 10
    assert notes["relations_missing_entity"] == 1
    labels = {(r.subject.start, r.object.start): r.label for r in result.examples}
    assert labels[(0, 13)] == "works_for" and labels[(13, 21)] == "located_in" and labels[(13, 0)] == "no_relation"
    assert len(result.examples) == 12 and result.examples[0].id.startswith("7:")
    # the same file trains NER: its entities
    assert [e.entities for e in read_ner(path)] == [[Span(0, 3, "PER"), Span(13, 17, "ORG"), Span(21, 26, "LOC"),
                                                     Span(28, 31, "PER")]]


def test_observed_type_pairs_window_and_seeded_cap(tmp_path):
    read = read_documents(doccano_re(tmp_path), "doccano")
    observed = frozenset({("PER", "ORG"), ("ORG", "LOC")})
    rows, made = relation_rows(read, PairRules(type_pairs=observed))
    # negatives of an observed type pair: Lee(PER) -> Acme(ORG) only; the 9 others are dropped
    assert made["positives"] == 2 and made["negatives_kept"] == 1 and made["negatives_dropped_type_pair"] == 9
    assert [(r.subject.start, r.object.start) for r in rows if r.label == "no_relation"] == [(28, 13)]
    # one sentence: "Kim works at Acme in Seoul." holds three entities -> 6 pairs; Lee is in the next
    assert sentence_starts(TEXT) == [0, 28]
    rows, made = relation_rows(read, PairRules(window=1))
    assert made["pairs_made"] == 6 and made["positives"] == 2
    rows, made = relation_rows(read, PairRules(window=5, window_unit="characters"))
    assert made["pairs_made"] == 4  # Acme-Seoul (gap 4) and Seoul-Lee (gap 2), each way
    assert made["relations_outside_window"] == 1 and made["positives"] == 1  # Kim-Acme is 10 apart
    capped = [relation_rows(read, PairRules(max_negatives=3, seed=s))[0] for s in (0, 0, 1)]
    assert [len(r) for r in capped] == [5, 5, 5] and capped[0] == capped[1]
    assert relation_rows(read, PairRules(max_negatives=3))[1]["negatives_dropped_cap"] == 7


def test_symmetric_label_learnt_both_ways_scored_once(tmp_path):
    ents = [{"id": "a", "label": "PER", "start_offset": 0, "end_offset": 3},
            {"id": "b", "label": "PER", "start_offset": 28, "end_offset": 31}]
    path = jsonl(tmp_path, "sym.jsonl", [{"text": TEXT, "entities": ents,
                                          "relations": [{"from_id": "b", "to_id": "a", "type": "knows"}]}])
    read = read_documents(path, "doccano")
    train, _ = relation_rows(read, PairRules(symmetric=frozenset({"knows"})))
    assert sorted(r.label for r in train) == ["knows", "knows"]
    scored, made = relation_rows(read, PairRules(symmetric=frozenset({"knows"}), both_directions=False))
    assert [(r.subject.start, r.label) for r in scored] == [(28, "knows")] and made["pairs_made"] == 1
    # through the config: the training file gets both directions, another file one
    cfg = config_class("re")()
    cfg = apply_overrides(cfg, {"data.train": str(path), "data.symmetric_labels": ["knows"]}, "test")
    assert len(read_re_as_configured(path, cfg.data).examples) == 2
    dev = tmp_path / "dev.jsonl"
    dev.write_bytes(path.read_bytes())
    assert len(read_re_as_configured(dev, cfg.data).examples) == 1


def label_studio_task(text, results, **extra):
    return {"id": extra.pop("task_id", 1), "data": {"text": text}, "annotations": [
        {"id": 10, "created_at": "2026-01-01T10:00:00Z", "updated_at": "2026-01-01T10:00:00Z", "result": results,
         "was_cancelled": False}, *extra.pop("more", [])], "predictions": []}


def span_result(rid, start, end, text, label):
    return {"id": rid, "from_name": "label", "to_name": "text", "type": "labels",
            "value": {"start": start, "end": end, "text": text, "labels": [label]}}


def test_label_studio_two_annotators_newest_used_others_counted(tmp_path):
    old = [span_result("r1", 0, 3, "Kim", "ORG")]
    newer = [span_result("r1", 0, 3, "Kim", "PER"), span_result("r2", 13, 17, "Acme", "ORG"),
             {"from_id": "r1", "to_id": "r2", "type": "relation", "direction": "right", "labels": ["works_for"]},
             {"from_id": "r2", "to_id": "r1", "type": "relation", "direction": "right", "labels": []},
             {"id": "c", "type": "choices", "value": {"choices": ["news"]}, "from_name": "genre", "to_name": "text"}]
    cancelled = {"id": 12, "updated_at": "2026-03-01T00:00:00Z", "was_cancelled": True,
                 "result": [span_result("x", 0, 3, "Kim", "LOC")]}
    task = label_studio_task(TEXT, old, more=[
        {"id": 11, "created_at": "2026-02-01T00:00:00Z", "updated_at": "2026-02-01T00:00:00Z", "result": newer},
        cancelled])
    unannotated = {"id": 2, "data": {"text": "nothing yet"}, "annotations": []}
    path = tmp_path / "export.json"
    path.write_text(json.dumps([task, unannotated], indent=2), encoding="utf-8")
    assert sniff(path) == "label_studio" and detect_format(path) == "label_studio"
    notes = {}
    examples = read_ner(path, notes=notes)
    assert examples[0].entities == [Span(0, 3, "PER"), Span(13, 17, "ORG")] and len(examples) == 1
    assert notes["tasks_with_several_annotations"] == 1 and notes["annotations_not_used"] == 1
    assert notes["annotations_cancelled"] == 1 and notes["tasks_without_annotation"] == 1
    assert notes["relations_without_label"] == 1 and notes["other_results"] == 1
    rows = read_re(path).examples
    assert [(r.subject.type, r.object.type, r.label) for r in rows] == [("PER", "ORG", "works_for"),
                                                                        ("ORG", "PER", "no_relation")]


def test_utf16_offsets_decided_by_entity_texts(tmp_path):
    text = "😀 Kim 🎉 met Lee in Seoul"
    # a browser counts each emoji as two units: Kim at [3, 6), Lee at [14, 17), Seoul at [21, 26)
    u = utf16_to_index(text)
    assert u[3] == 2 and u[14] == 12 and 1 not in u and index_to_utf16(text, 12) == 14
    results = [span_result("a", 3, 6, "Kim", "PER"), span_result("b", 14, 17, "Lee", "PER"),
               span_result("c", 21, 26, "Seoul", "LOC")]
    path = tmp_path / "emoji.json"
    path.write_text(json.dumps([label_studio_task(text, results)]), encoding="utf-8")
    notes = {}
    (ex,) = read_ner(path, notes=notes)
    assert notes["offset_unit"] == "utf16" and "3 of 3 match counted in utf16" in notes["offset_unit_decided_by"]
    assert [text[s.start:s.end] for s in ex.entities] == ["Kim", "Lee", "Seoul"]
    # told otherwise, the texts do not match: an error naming the task and the result
    with pytest.raises(DataError, match=r"emoji.json, task 1, field 'annotations\[0\].result\[0\]': the entity text 'Kim'"):
        read_ner(path, offset_unit="code_points")
    # skip mode drops the entity and counts it
    notes = {}
    assert read_ner(path, offset_unit="code_points", on_mismatch="skip", notes=notes)[0].entities == []
    assert notes["entities_skipped"] == 3


def test_utf16_without_entity_texts_and_code_points_default():
    text = "😀😀 Kim"
    # doccano gives no entity text: in-range spans without edge whitespace decide
    assert decide_unit([text], [Mention(0, 5, 8, None)])[0] == "utf16"
    assert decide_unit([text], [Mention(0, 3, 6, None)])[0] == "code_points"
    assert decide_unit(["plain Kim"], [Mention(0, 6, 9, None)]) == (
        "code_points", "no character outside the Basic Multilingual Plane: the units agree")


def test_edge_whitespace_reported_not_trimmed(tmp_path):
    path = jsonl(tmp_path, "ws.jsonl", [{"text": TEXT, "label": [[0, 4, "PER"]]}])
    notes = {}
    (ex,) = read_ner(path, notes=notes)
    assert ex.entities == [Span(0, 4, "PER")] and notes["entities_with_edge_whitespace"] == 1
    assert "'Kim '" in notes["edge_whitespace"][0]


def write_brat(tmp_path):
    folder = tmp_path / "brat"
    folder.mkdir()
    (folder / "doc1.txt").write_text("Kim works at Acme.\r\nAcme is in New York.\n", encoding="utf-8", newline="")
    (folder / "doc1.ann").write_text(
        "T1\tPER 0 3\tKim\n"
        "T2\tORG 13 17\tAcme\n"
        "T3\tORG 20 24\tAcme\n"
        "T4\tLOC 32 35;36 40\tNew York\n"  # discontinuous: reported, not read
        "R1\tworks_for Arg1:T1 Arg2:T2\n"
        "R2\tlocated_in Arg1:T3 Arg2:T4\n"  # its object is the discontinuous span
        "A1\tNegated T1\n"
        "N1\tReference T1 Wikidata:Q1\tKim\n"
        "#1\tAnnotatorNotes T1\tchecked\n", encoding="utf-8")
    (folder / "doc2.txt").write_text("Lee.", encoding="utf-8")
    (folder / "doc2.ann").write_text("T1\tPER 0 3\tLee\n", encoding="utf-8")
    return folder


def test_brat_folder_discontinuous_and_unread_lines_reported(tmp_path):
    folder = write_brat(tmp_path)
    assert detect_format(folder) == "brat"
    notes = {}
    examples = read_ner(folder, notes=notes)
    assert [e.id for e in examples] == ["doc1", "doc2"]
    # offsets count the \r\n as two characters: the second Acme sits at [20, 24)
    assert examples[0].entities == [Span(0, 3, "PER"), Span(13, 17, "ORG"), Span(20, 24, "ORG")]
    assert notes["not_read"] == {"attributes": 1, "discontinuous entities": 1, "normalizations": 1, "notes": 1}
    assert any("T4" in line for line in notes["not_read_examples"])
    result = read_re(folder)
    assert result.notes["relations_missing_entity"] == 1 and result.notes["positives"] == 1
    assert result.notes["pairs_made"] == 6  # three entities in doc1, one in doc2


def test_brat_bad_line_names_file_and_line(tmp_path):
    folder = write_brat(tmp_path)
    (folder / "doc2.ann").write_text("T1\tPER 0 3\tLee\nT2\tPER x 3\tLee\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"doc2.ann, line 2, field 'T2': expected an integer offset"):
        read_ner(folder)


def test_token_file_found_by_name_and_mapping(tmp_path):
    record = {"tokens": ["IL-2", "gene", "expression"], "entity_mentions": [
        {"start": 0, "end": 2, "entity_type": "DNA"}, {"start": 0, "end": 1, "entity_type": "protein"}]}
    path = jsonl(tmp_path, "genia.jsonl", [record])
    (ex,) = read_ner(path)
    assert ex.entities == [Span(0, 4, "protein"), Span(0, 9, "DNA")]
    # other names, mapped
    mapped = jsonl(tmp_path, "mapped.jsonl", [{"sentence": TEXT, "mentions": [{"from": 0, "to": 3, "kind": "PER"}]}])
    fields = {"text": "sentence", "entities": "mentions", "start": "from", "end": "to", "type": "kind"}
    assert read_ner(mapped, fields=fields)[0].entities == [Span(0, 3, "PER")]
    with pytest.raises(DataError, match=r"mapped.jsonl, line 1, field 'mentions\[0\].stop': missing: no end key 'stop' \(data.fields.end\)"):
        read_ner(mapped, fields={**fields, "end": "stop"})


def test_mapping_refuses_an_unknown_role():
    cfg = config_class("ner")()
    with pytest.raises(ConfigError, match=r"unknown role\(s\) \['label_key'\]; data.fields maps text, tokens"):
        apply_overrides(cfg, {"data.fields": {"label_key": "tags", "text": "sentence"}}, "test")


def test_import_files_with_relations_read_back(tmp_path):
    from spanfirst.data.tool_imports import write_predictions

    text = "🙂 Kim works at Acme."
    entities = [{"start": 2, "end": 5, "type": "PER", "score": 0.9, "text": "Kim"},
                {"start": 15, "end": 19, "type": "ORG", "score": 0.8, "text": "Acme"}]
    relations = [{"subject": 0, "object": 1, "label": "works_for", "score": 0.7}]
    ls, dc = tmp_path / "ls.json", tmp_path / "dc.jsonl"
    assert write_predictions(ls, [(text, entities, relations)], "label-studio", "v1") == 1
    assert write_predictions(dc, [(text, entities, relations)], "doccano") == 1
    task = json.loads(ls.read_text(encoding="utf-8"))[0]
    assert task["predictions"][0]["result"][0]["value"]["start"] == 3  # UTF-16: the emoji counts two
    task["annotations"] = [{"id": 1, "result": task["predictions"][0]["result"]}]
    ls.write_text(json.dumps([task]), encoding="utf-8")
    for path in (ls, dc):
        (row,) = read_re(path).examples[:1]
        assert (row.subject, row.object, row.label) == (Span(2, 5, "PER"), Span(15, 19, "ORG"), "works_for")
