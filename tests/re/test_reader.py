"""KLUE-RE CSV / RE JSONL readers: inclusive offsets, dict strings, mismatches, bad rows, labels."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from spanfirst.errors import DataError
from spanfirst.re.reader import check_labels, read_re, relation_labels, write_re_jsonl

HEADER = ["id", "sentence", "subject_entity", "object_entity", "label", "source"]


def ent(word: str, start: int, end: int, etype: str) -> str:
    return repr({"word": word, "start_idx": start, "end_idx": end, "type": etype})


def write_csv(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", encoding="utf-8-sig", newline="") as f:  # with a BOM, like the KLUE file
        writer = csv.writer(f)
        writer.writerow(HEADER)
        writer.writerows(rows)
    return path


GOOD = [
    ["1", "삼양식품은 전중윤 창업주의 뜻을 기렸다.", ent("삼양식품", 0, 3, "ORG"), ent("전중윤", 6, 8, "PER"),
     "org:founded_by", "wikitree"],
    ["2", "John O'Neil joined Acme.", ent("Acme", 19, 22, "ORG"), ent("John O'Neil", 0, 10, "PER"),
     "org:top_members/employees", "x"],
]


def test_csv_inclusive_offsets_dict_strings_and_quotes(tmp_path):
    path = write_csv(tmp_path / "re.csv", GOOD)
    assert "'word': \"\"John O'Neil\"\"" in path.read_text(encoding="utf-8-sig")  # CSV-escaped dict string
    result = read_re(path)
    assert result.skipped == 0
    a, b = result.examples
    assert (a.id, a.label) == ("1", "org:founded_by")
    assert (a.subject.start, a.subject.end, a.subject.type) == (0, 4, "ORG")  # end_idx 3 inclusive -> 4 exclusive
    assert a.text[a.subject.start : a.subject.end] == "삼양식품"
    assert a.text[a.object.start : a.object.end] == "전중윤"
    assert b.text[b.object.start : b.object.end] == "John O'Neil"


def test_mismatched_word_fails_naming_row_and_field(tmp_path):
    bad = ["3", "서울 강남구에서 회의가 열렸다.", ent("강남", 0, 1, "LOC"), ent("회의", 9, 10, "POH"), "no_relation", "x"]
    path = write_csv(tmp_path / "re.csv", [GOOD[0], bad, GOOD[1]])
    with pytest.raises(DataError) as err:
        read_re(path)
    assert err.value.line == 3 and err.value.field == "subject_entity.word"
    assert "re.csv" in str(err.value) and "'강남'" in str(err.value)


def test_mismatched_word_skip_mode_counts(tmp_path):
    bad = ["3", "서울 강남구에서 회의가 열렸다.", ent("강남", 0, 1, "LOC"), ent("회의", 9, 10, "POH"), "no_relation", "x"]
    bad2 = ["4", "서울 강남구에서 회의가 열렸다.", ent("서울", 0, 1, "LOC"), ent("열렸", 9, 10, "POH"), "no_relation", "x"]
    path = write_csv(tmp_path / "re.csv", [GOOD[0], bad, bad2, GOOD[1]])
    result = read_re(path, on_mismatch="skip")
    assert [e.id for e in result.examples] == ["1", "2"]
    assert result.skipped == 2 and "line 4" in result.skipped_rows[1]


@pytest.mark.parametrize("subject, field, needle", [
    ("{'word': '삼양식품', 'start_idx': 0,", "subject_entity", "dict literal"),
    ("{'word': '삼양식품', 'start_idx': 0, 'type': 'ORG'}", "subject_entity", "end_idx"),
    ("['삼양식품', 0, 3]", "subject_entity", "dict"),
    (ent("삼양식품", 0, 99, "ORG"), "subject_entity", "outside the sentence"),
    ("{'word': '삼양식품', 'start_idx': 'x', 'end_idx': 3, 'type': 'ORG'}", "subject_entity.start_idx", "integer"),
    ("__import__('os').system('true')", "subject_entity", "dict literal"),  # never eval'd
])
def test_bad_rows_name_file_row_and_field(tmp_path, subject, field, needle):
    row = ["9", "삼양식품은 전중윤 창업주의 뜻을 기렸다.", subject, ent("전중윤", 6, 8, "PER"), "org:founded_by", "x"]
    path = write_csv(tmp_path / "bad.csv", [GOOD[1], row])
    with pytest.raises(DataError) as err:
        read_re(path, on_mismatch="skip")  # bad rows fail even in skip mode
    assert err.value.path.endswith("bad.csv") and err.value.line == 3 and err.value.field == field
    assert needle in str(err.value)


def test_missing_column_is_named(tmp_path):
    path = tmp_path / "cols.csv"
    path.write_text("id,sentence,subject_entity,label\n1,a,b,c\n", encoding="utf-8")
    with pytest.raises(DataError, match="object_entity"):
        read_re(path)


def test_jsonl_round_trip_and_errors(tmp_path, examples):
    path = tmp_path / "re.jsonl"
    assert write_re_jsonl(examples, path) == len(examples)
    back = read_re(path).examples
    assert back == examples
    record = json.loads(path.read_text(encoding="utf-8").splitlines()[0])
    assert record["subject"]["word"] == "삼양식품"  # end exclusive
    record["object"]["word"] = "다른말"
    (tmp_path / "bad.jsonl").write_text(json.dumps(record, ensure_ascii=False) + "\n", encoding="utf-8")
    with pytest.raises(DataError) as err:
        read_re(tmp_path / "bad.jsonl")
    assert err.value.line == 1 and err.value.field == "object.word"
    assert read_re(tmp_path / "bad.jsonl", on_mismatch="skip").skipped == 1
    (tmp_path / "bad2.jsonl").write_text('{"text": "abc", "subject": {"start": 0, "end": 1, "type": "X"}}\n')
    with pytest.raises(DataError, match="field 'object'"):
        read_re(tmp_path / "bad2.jsonl")


def test_label_order_from_list_or_data(tmp_path, examples):
    rel = tmp_path / "relations.json"
    rel.write_text(json.dumps({"relations": ["no_relation", "org:founded_by", "per:employee_of"]}))
    assert relation_labels(examples, "no_relation", rel) == ["no_relation", "org:founded_by", "per:employee_of"]
    from_data = relation_labels(examples, "no_relation")
    assert from_data[0] == "no_relation" and from_data[1:] == sorted(set(from_data[1:]))
    with pytest.raises(DataError, match=r"per:schools_attended"):
        check_labels(examples, ["no_relation", "org:founded_by", "per:employee_of"], "train.jsonl")
    with pytest.raises(DataError, match="negative label"):
        relation_labels(examples, "NA", rel)


def test_shared_klue_re_files(shared_re):
    train = read_re(shared_re / "klue-re-train.csv")
    assert len(train.examples) == 4500 and train.skipped == 0
    labels = relation_labels(train.examples, "no_relation", shared_re / "relation_list.json")
    assert len(labels) == 30 and labels[0] == "no_relation"
    check_labels(train.examples, labels, "train")
    unlabeled = read_re(shared_re / "klue-re-unlabeled.csv", limit=10)
    assert len(unlabeled.examples) == 10


# -- layouts as teams publish them: a mapping, not a rewrite -------------------------------------


def published_rows(end_exclusive: bool) -> list[dict]:
    """KLUE-RE-like rows with other names: subject/object, relation, text/entity_type, string offsets."""
    e = 1 if end_exclusive else 0
    rows = []
    for text, subj, obj, rel in [("삼양식품은 전중윤 창업주의 뜻을 기렸다.", ("삼양식품", 0, "ORG"), ("전중윤", 6, "PER"), "org:founded_by"),
                                 ("John O'Neil joined Acme.", ("Acme", 19, "ORG"), ("John O'Neil", 0, "PER"),
                                  "org:top_members/employees")]:
        ents = [{"text": w, "start_idx": str(s), "end_idx": str(s + len(w) - 1 + e), "entity_type": t}
                for w, s, t in (subj, obj)]
        rows.append({"sentence": text, "subject": ents[0], "object": ents[1], "relation": rel})
    return rows


@pytest.mark.parametrize("end_exclusive", [False, True])
def test_published_csv_with_other_names_index_column_and_auto_offsets(tmp_path, end_exclusive):
    path = tmp_path / "published.csv"
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["", "sentence", "subject", "object", "relation"])  # pandas' unnamed index column
        for i, r in enumerate(published_rows(end_exclusive)):
            w.writerow([i, r["sentence"], repr(r["subject"]), repr(r["object"]), r["relation"]])
    result = read_re(path)
    a, b = result.examples
    assert a.text[a.subject.start:a.subject.end] == "삼양식품" and b.text[b.object.start:b.object.end] == "John O'Neil"
    assert a.label == "org:founded_by" and a.subject.type == "ORG"
    assert result.notes["offsets"] == ("exclusive" if end_exclusive else "inclusive")
    assert "4 of 4 match" in result.notes["offsets_decided_by"]
    assert result.notes["columns"] == {"text": "sentence", "subject": "subject", "object": "object", "label": "relation"}
    # forcing the other convention makes every word mismatch: the first row is named
    with pytest.raises(DataError) as err:
        read_re(path, offsets="inclusive" if end_exclusive else "exclusive")
    assert err.value.line == 2 and err.value.field == "subject.word"


def test_explicit_column_and_key_mapping_in_jsonl_and_parquet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet

    rows = [{"sent": r["sentence"], "head": {"surface": r["subject"]["text"], "kind": r["subject"]["entity_type"],
                                             "b": int(r["subject"]["start_idx"]), "e": int(r["subject"]["end_idx"])},
             "tail": {"surface": r["object"]["text"], "kind": r["object"]["entity_type"],
                      "b": int(r["object"]["start_idx"]), "e": int(r["object"]["end_idx"])},
             "rel": r["relation"]} for r in published_rows(True)]
    mapping = {"columns": {"text": "sent", "subject": "head", "object": "tail", "label": "rel"},
               "entity_keys": {"word": "surface", "type": "kind", "start": "b", "end": "e"}}
    jsonl = tmp_path / "mapped.jsonl"
    jsonl.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    parquet = tmp_path / "mapped.parquet"
    pyarrow.parquet.write_table(pa.Table.from_pylist(rows), parquet)
    for path in (jsonl, parquet):
        result = read_re(path, **mapping)
        assert [e.label for e in result.examples] == ["org:founded_by", "org:top_members/employees"]
        a = result.examples[0]
        assert a.text[a.object.start:a.object.end] == "전중윤" and result.notes["offsets"] == "exclusive"
    with pytest.raises(DataError, match=r"no label column: 'relation_type' \(data.columns.label\)") as err:
        read_re(jsonl, columns={**mapping["columns"], "label": "relation_type"}, entity_keys=mapping["entity_keys"])
    assert err.value.line == 1
    with pytest.raises(DataError, match=r"row 1, field 'head': missing key\(s\) type \('entity_type'\)"):
        read_re(parquet, columns=mapping["columns"], entity_keys={**mapping["entity_keys"], "type": "entity_type"})


def test_config_rejects_an_unknown_role():
    from spanfirst.config import ConfigError, ReRunConfig, apply_overrides

    cfg = apply_overrides(ReRunConfig(), {"data.columns": {"label": "relation"}})
    assert cfg.data.columns == {"label": "relation"}
    with pytest.raises((ConfigError, ValueError), match="unknown role"):
        apply_overrides(ReRunConfig(), {"data.entity_keys": {"offset": "b"}})
