"""``pipelines/inspect_data.py``: what training would read, printed before training."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def inspect_main():
    spec = importlib.util.spec_from_file_location("inspect_data", REPO / "pipelines" / "inspect_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def test_nested_conll_both_levels_with_the_candidate_ceiling(tmp_path, capsys):
    lines = []
    for i in range(30):
        lines += [f"IL-{i} B-DNA B-protein", "gene I-DNA O", "in O O", "human B-cell_type O", "T I-cell_type B-cell_type",
                  "cells I-cell_type I-cell_type", ""]
    path = tmp_path / "nested.conll"
    path.write_text("\n".join(lines), encoding="utf-8")
    assert inspect_main()([str(path), "--set", "data.conll_tag_column=[1, 2]"]) == 0
    out = capsys.readouterr().out
    assert "examples: 30" in out and "entities: 120" in out and "nested entities: 60" in out
    assert "entities per type: DNA 30, cell_type 60, protein 30" in out
    assert "reach 1.000 of the entities (bins fitted to this file)" in out


def test_re_csv_with_other_column_names_reports_mapping_and_offsets(tmp_path, capsys):
    path = tmp_path / "re.csv"
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["sentence", "subject", "object", "relation"])
        for i in range(3):
            w.writerow(["Ada Lovelace met Babbage.", repr({"text": "Ada Lovelace", "start_idx": 0, "end_idx": 12,
                                                            "entity_type": "PER"}),
                        repr({"text": "Babbage", "start_idx": 17, "end_idx": 24, "entity_type": "PER"}), "per:colleague"])
    assert inspect_main()([str(path), "--task", "re"]) == 0
    out = capsys.readouterr().out
    assert "offsets: exclusive" in out and "labels: per:colleague 3" in out
    assert "columns: text sentence, subject subject, object object, label relation" in out


def test_a_bad_file_is_one_clear_line(tmp_path, capsys):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"sentence": "no known keys"}\n', encoding="utf-8")
    assert inspect_main()([str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "bad.jsonl, line 1" in err and "record layout" in err


def test_brat_folder_as_ner_and_as_re_pairs(tmp_path, capsys):
    from tests.data.test_annotation_tools import write_brat

    folder = write_brat(tmp_path)
    assert inspect_main()([str(folder), "--task", "re"]) == 0
    out = capsys.readouterr().out
    assert "format: brat" in out and "entities: 4" in out and "relations: 2" in out
    assert "pairs made: 6" in out and "positives: 1" in out and "negatives kept: 5" in out
    assert "relations missing entity: 1" in out and "discontinuous entities 1" in out
    assert inspect_main()([str(folder), "--task", "ner"]) == 0
    out = capsys.readouterr().out
    assert "entities: 4" in out and "entities per type: ORG 2, PER 2" in out and "relations: 2" in out
