"""A symmetric relation is answered once per entity pair, whichever direction scored higher."""

from __future__ import annotations

from spanfirst.extraction.chain import merge_symmetric


def rel(s: int, o: int, label: str, score: float) -> dict:
    return {"subject": s, "object": o, "label": label, "score": score}


def test_the_better_direction_of_a_symmetric_label_is_kept_and_directed_ones_are_untouched():
    got = merge_symmetric([rel(0, 1, "sibling", 0.7), rel(0, 2, "employer", 0.9), rel(1, 0, "sibling", 0.8),
                           rel(2, 0, "employer", 0.6), rel(2, 1, "sibling", 0.5)], frozenset({"sibling"}))
    assert got == [rel(0, 2, "employer", 0.9), rel(1, 0, "sibling", 0.8), rel(2, 0, "employer", 0.6),
                   rel(2, 1, "sibling", 0.5)]


def test_two_symmetric_labels_on_one_pair_are_both_answered():
    got = merge_symmetric([rel(0, 1, "a", 0.6), rel(1, 0, "b", 0.7)], frozenset({"a", "b"}))
    assert got == [rel(0, 1, "a", 0.6), rel(1, 0, "b", 0.7)]
