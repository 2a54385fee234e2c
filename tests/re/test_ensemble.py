"""Ensemble rules on hand-made logits, label alignment by name, weights, and the report."""

from __future__ import annotations

import numpy as np
import pytest

from spanfirst.re.ensemble import (
    Member, align, combine, ensemble_report, f1_weights, format_table, hard_vote, logit_average, search_weights,
    soft_vote,
)

LABELS = ["no_relation", "a", "b"]


def logits_of(probs: list[list[float]]) -> np.ndarray:
    return np.log(np.asarray(probs, dtype=float))


P1 = [[0.7, 0.2, 0.1], [0.1, 0.6, 0.3]]
P2 = [[0.2, 0.7, 0.1], [0.1, 0.3, 0.6]]
P3 = [[0.3, 0.6, 0.1], [0.2, 0.2, 0.6]]


def test_soft_vote_is_the_mean_of_probabilities():
    out = soft_vote([logits_of(P1), logits_of(P2)])
    np.testing.assert_allclose(out, (np.asarray(P1) + np.asarray(P2)) / 2)
    np.testing.assert_allclose(soft_vote([logits_of(P1), logits_of(P2)], [3, 1]), 0.75 * np.asarray(P1) + 0.25 * np.asarray(P2))


def test_hard_vote_majority_and_tie_break():
    out = hard_vote([logits_of(P1), logits_of(P2), logits_of(P3)])
    assert out.argmax(1).tolist() == [1, 2]  # votes (0, 1, 1) and (1, 2, 2)
    assert out[0, 1] == pytest.approx(2 / 3, abs=1e-2)
    np.testing.assert_allclose(out.sum(1), 1.0)


def test_hard_vote_tie_goes_to_higher_mean_probability():
    x = [[0.5, 0.4, 0.1]]
    y = [[0.05, 0.55, 0.4]]  # votes: no_relation vs a; mean probs 0.275 vs 0.475
    assert hard_vote([logits_of(x), logits_of(y)]).argmax(1).tolist() == [1]


def test_logit_averaging_and_weights():
    a = np.array([[2.0, 0.0, 0.0]])
    b = np.array([[0.0, 4.0, 0.0]])
    out = logit_average([a, b])
    expected = np.exp([1.0, 2.0, 0.0]) / np.exp([1.0, 2.0, 0.0]).sum()
    np.testing.assert_allclose(out[0], expected)
    w = combine("weighted", [a, b], [0.75, 0.25])
    z = np.array([1.5, 1.0, 0.0])
    np.testing.assert_allclose(w[0], np.exp(z) / np.exp(z).sum())
    # logit averaging differs from averaging probabilities
    assert not np.allclose(out, combine("soft", [a, b]))
    with pytest.raises(ValueError, match="non-negative"):
        combine("weighted", [a, b], [1.0, -1.0])
    with pytest.raises(ValueError, match="unknown ensemble rule"):
        combine("median", [a, b])


def test_align_by_label_name_and_error_for_different_sets():
    m = np.array([[0.1, 0.2, 0.7]])  # in order b, no_relation, a
    np.testing.assert_allclose(align(LABELS, ["b", "no_relation", "a"], m), [[0.2, 0.7, 0.1]])
    with pytest.raises(ValueError) as err:
        align(LABELS, ["no_relation", "a", "c"], m, "ckpt2")
    assert "ckpt2" in str(err.value) and "missing ['b']" in str(err.value) and "extra ['c']" in str(err.value)


def test_f1_weights_and_search():
    assert f1_weights([0.6, 0.2]) == pytest.approx([0.75, 0.25])
    assert f1_weights([0.0, 0.0]) == [0.5, 0.5]
    with pytest.raises(ValueError, match="micro F1"):
        f1_weights([0.5, None])
    gold = [1, 2, 1, 2]
    good = logits_of([[0.1, 0.8, 0.1], [0.1, 0.1, 0.8], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]])
    bad = logits_of([[0.8, 0.1, 0.1], [0.8, 0.1, 0.1], [0.1, 0.1, 0.8], [0.1, 0.8, 0.1]])
    weights, f1 = search_weights([bad, good], gold, LABELS, "no_relation")
    assert f1 == pytest.approx(1.0) and weights[1] > weights[0]


def test_ensemble_report_side_by_side():
    gold = ["a", "b"]
    m1 = Member("m1", LABELS, logits_of(P1))
    # the same model as m2 but with its columns in another order: aligned by name
    m2 = Member("m2", ["b", "a", "no_relation"], logits_of(P2)[:, [2, 1, 0]])
    report, probs = ensemble_report([m1, m2], "soft", None, gold, "no_relation")
    np.testing.assert_allclose(probs, (np.asarray(P1) + np.asarray(P2)) / 2)
    names = [row["name"] for row in report["table"]]
    assert names == ["m1", "m2", "ensemble (soft)"]
    assert report["table"][1]["micro_f1"] == pytest.approx(1.0)  # m2 gets a and b right
    assert "ensemble (soft)" in format_table(report["table"])
    rep_w, _ = ensemble_report([m1, m2], "weighted", "f1", gold, "no_relation")
    assert rep_w["weights"][1] > rep_w["weights"][0]
    rep_u, _ = ensemble_report([m1, m2], "logit", None, None, "no_relation")  # unlabelled: no scores
    assert rep_u["table"] == [] and "ensemble" not in rep_u
    with pytest.raises(ValueError, match="weighted"):
        ensemble_report([m1, m2], "soft", [0.5, 0.5], gold, "no_relation")
