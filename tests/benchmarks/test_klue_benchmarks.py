"""The Korean real-encoder benchmarks' own logic (no training here): the miss classes, the
held-back test split, and the CPU sweep space that must hold its base config."""

from __future__ import annotations

import pytest

from benchmarks.ner_misses import MISS_CLASSES, _miss_class
from spanfirst.data.alignment import Encoded


def encoded(text: str, pieces: list[str]) -> Encoded:
    """An encoding of ``text`` into ``pieces`` (in order, whitespace between them), with <s> and </s>."""
    offsets, at = [(0, 0)], 0
    for piece in pieces:
        at = text.index(piece, at)
        offsets.append((at, at + len(piece)))
        at += len(piece)
    offsets.append((0, 0))
    return Encoded(text, list(range(len(offsets))), offsets, [False] + [True] * len(pieces) + [False])


# "김흥국이" ends in the piece "국이": the entity "김흥국" ends inside a token
ENC = encoded("가수 김흥국이 왕십리(서울)에서 공연", ["가수", "김", "흥", "국이", "왕", "십리", "(", "서울)", "에서", "공연"])
NAME, PLACE, CITY = (3, 6), (8, 11), (12, 14)  # 김흥국, 왕십리, 서울 (its token "서울)" carries the bracket)


def cls(span, etype, out=None, cand=None, trims=True, threshold=0.5):
    cand = cand or {}
    return _miss_class(ENC, span, etype, out or {}, cand, {s for s, _ in cand}, threshold, trims)


def test_a_found_entity_and_one_found_with_another_type():
    assert cls(PLACE, "LC", {(PLACE, "LC"): (5, 6)}) == MISS_CLASSES[0]
    assert cls(PLACE, "LC", {(PLACE, "OG"): (5, 6)}) == "right span, wrong type"


def test_an_edge_inside_a_token_is_out_of_reach_without_trims_and_a_trim_gone_wrong_with_them():
    # without edge trims nothing can end inside "국이": the particle class, whatever was predicted
    assert cls(NAME, "PS", trims=False).startswith("edge inside a token, letters attached")
    assert cls(CITY, "LC", trims=False).startswith("edge inside a token, other characters attached")
    # with trims: the model found the tokens (2..4) but kept the particle
    assert cls(NAME, "PS", {((3, 7), "PS"): (2, 4)}).startswith("edge inside a token, letters attached")
    # with trims and nothing predicted there, the candidates decide
    assert cls(NAME, "PS", cand={(2, 4): (0.2, "PS")}) == "candidate of the right type under the threshold"


def test_boundary_type_candidate_threshold_and_suppression_classes():
    assert cls(PLACE, "LC", {((8, 10), "LC"): (5, 5)}) == "wrong boundary (on token boundaries)"
    assert cls(PLACE, "LC", cand={(5, 5): (0.9, "LC")}) == "not a candidate: length not expanded"
    assert cls(PLACE, "LC", cand={(1, 1): (0.9, "LC")}) == "not a candidate: start outside the top-k"
    assert cls(PLACE, "LC", cand={(5, 6): (0.9, "OG")}) == "candidate of another type, not output"
    assert cls(PLACE, "LC", cand={(5, 6): (0.3, "LC")}) == "candidate of the right type under the threshold"
    assert cls(PLACE, "LC", cand={(5, 6): (0.8, "LC")}) == "candidate over the threshold, suppressed by NMS or the output cap"


def test_the_held_back_test_split_is_seeded_and_disjoint(tmp_path, shared_data):
    from benchmarks.heads_klue import Setup, split
    from spanfirst.data.readers import read_ner

    files = split(shared_data, tmp_path, Setup())
    train, test = read_ner(files["train"]), read_ner(files["test"])
    every = read_ner(shared_data / "klue-ner" / "klue-ner-train.tsv")
    assert (len(train), len(test)) == (3000, 1000)
    assert sorted(e.id for e in train + test) == sorted(e.id for e in every)  # each sentence once, in one split
    again = split(shared_data, tmp_path / "again", Setup())
    assert [e.id for e in read_ner(again["test"])] == [e.id for e in test]  # seeded


def test_the_cpu_sweep_space_holds_the_e5_base_config(tmp_path, shared_data):
    """sweep-klue's first trial trains klue_ner_e5_small.yaml as it is: the shipped span-first
    space must hold its values (learning rates of a small encoder, frozen word embeddings)."""
    from benchmarks.sweep_klue import write_space
    from spanfirst.sweep.runner import first_trial
    from spanfirst.sweep.space import load_space

    space = load_space(write_space(shared_data, tmp_path / "e5", tmp_path, seed=0))
    point, drawn = first_trial(space)
    assert drawn == [] and point["train.lr_backbone"] == pytest.approx(1e-4)
    assert not any(k.startswith("model.lora.") for k in point)


def test_analysis_runs_are_found_by_their_overrides_and_only_a_finished_one_counts(tmp_path):
    from benchmarks.re_klue import ANALYSIS, DESIGN, finished, run_dir

    dirs = {run_dir(tmp_path, overrides, 0) for _, _, overrides in ANALYSIS}
    assert len(dirs) == len(ANALYSIS)  # one folder per setting, none shared
    design = run_dir(tmp_path, DESIGN, 0)
    assert design.name.startswith("focal_gamma=2.0-label_smoothing=0.1-marker_style=typed_punct") and design.name.endswith("-seed0")
    (design / "best").mkdir(parents=True)
    assert not finished(tmp_path, DESIGN, 0)  # a run stopped before its first best epoch was written
    (design / "best" / "metrics.json").write_text("{}", encoding="utf-8")
    (design / "history.jsonl").write_text("{}\n", encoding="utf-8")
    assert finished(tmp_path, DESIGN, 0) and not finished(tmp_path, DESIGN, 1)


def test_heads_klue_refuses_an_unknown_head_or_a_table_without_its_baseline(tmp_path):
    from benchmarks.heads_klue import Setup, run

    with pytest.raises(ValueError, match="choose from"):
        run(tmp_path, tmp_path, None, Setup(heads=("span-first", "CRF")))
    with pytest.raises(ValueError, match="'BIO' among them"):
        run(tmp_path, tmp_path, None, Setup(heads=("span-first",)))
