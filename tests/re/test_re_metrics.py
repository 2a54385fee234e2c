"""KLUE-RE metrics against hand-computed cases, and the type-pair baseline."""

from __future__ import annotations

import numpy as np
import pytest

from spanfirst.re.baseline import TypePairBaseline
from spanfirst.re.metrics import auprc, average_precision, confusion, micro_f1, per_class, re_scores


def test_micro_f1_excludes_the_negative_class():
    # labels: 0 = no_relation, 1, 2
    gold = [0, 0, 1, 1, 2, 2]
    pred = [0, 1, 1, 0, 2, 1]
    # tp: idx2 (1), idx4 (2) -> 2; predicted non-negative: idx1,2,4,5 -> 4; gold non-negative: 4
    m = micro_f1(gold, pred, negative=0)
    assert (m["tp"], m["predicted"], m["gold"]) == (2, 4, 4)
    assert m["precision"] == pytest.approx(0.5) and m["recall"] == pytest.approx(0.5) and m["f1"] == pytest.approx(0.5)
    # correct no_relation predictions earn nothing, but wrong ones cost recall
    assert micro_f1([0, 0, 0], [0, 0, 0], 0)["f1"] == 0.0
    assert micro_f1([1, 2], [0, 0], 0) == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "tp": 0, "predicted": 0, "gold": 2}
    # the negative class need not be index 0
    assert micro_f1([2, 0], [2, 0], negative=2)["f1"] == pytest.approx(1.0)


def test_average_precision_hand_computed():
    # scores 0.9(+) 0.8(-) 0.7(+) 0.1(-): P@1 = 1, P@3 = 2/3 -> AP = 0.5*1 + 0.5*2/3
    assert average_precision(np.array([1, 0, 1, 0]), np.array([0.9, 0.8, 0.7, 0.1])) == pytest.approx(5 / 6)
    # a perfect ranking
    assert average_precision(np.array([0, 1, 1]), np.array([0.1, 0.5, 0.9])) == pytest.approx(1.0)
    # ties share one threshold: both at 0.5, one positive -> P = 1/2 at R = 1
    assert average_precision(np.array([1, 0]), np.array([0.5, 0.5])) == pytest.approx(0.5)
    # (sklearn's average_precision_score gives 0.8333, 1.0 and 0.5 for these three)
    assert np.isnan(average_precision(np.array([0, 0]), np.array([0.2, 0.3])))


def test_auprc_averages_classes_with_positives():
    gold = [0, 1, 0, 1]
    probs = np.array([[0.9, 0.1, 0.0], [0.2, 0.8, 0.0], [0.3, 0.7, 0.0], [0.6, 0.4, 0.0]])
    mean, per = auprc(gold, probs)
    # class 0 scores .9 .2 .3 .6, positives {0, 2}: ranking .9(+) .6(-) .3(+) .2(-) -> AP = .5 + .5*2/3
    # class 1 scores .1 .8 .7 .4, positives {1, 3}: .8(+) .7(-) .4(+) .1(-) -> AP = 5/6
    assert per[0] == pytest.approx(5 / 6) and per[1] == pytest.approx(5 / 6) and np.isnan(per[2])
    assert mean == pytest.approx(5 / 6)  # class 2 has no positives: skipped


def test_confusion_and_per_class():
    gold, pred = [0, 1, 1, 2], [0, 1, 2, 2]
    assert confusion(gold, pred, 3) == [[1, 0, 0], [0, 1, 1], [0, 0, 1]]
    pc = per_class(gold, pred, ["no_relation", "a", "b"])
    assert pc["a"] == {"precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3), "support": 2, "predicted": 1}
    assert pc["b"]["precision"] == 0.5
    scores = re_scores(gold, np.eye(3)[pred], ["no_relation", "a", "b"], "no_relation")
    assert scores["micro"]["f1"] == pytest.approx(2 / 3) and scores["accuracy"] == 0.75


def test_type_pair_baseline(make_example):
    example = make_example
    train = [
        example("A는 B의 대표다", "A", "PER", "B", "ORG", "per:employee_of"),
        example("C는 D의 대표다", "C", "PER", "D", "ORG", "per:employee_of"),
        example("E와 F", "E", "PER", "F", "ORG", "no_relation"),
        example("G와 H", "G", "ORG", "H", "DAT", "org:founded"),
        example("I와 J", "I", "ORG", "J", "ORG", "no_relation"),
        example("K와 L", "K", "ORG", "L", "ORG", "no_relation"),
    ]
    base = TypePairBaseline().fit(train)
    test = [
        example("X와 Y", "X", "PER", "Y", "ORG", "?"),
        example("X와 Y", "X", "ORG", "Y", "DAT", "?"),
        example("X와 Y", "X", "LOC", "Y", "PER", "?"),  # unseen pair: overall most frequent
    ]
    assert base.predict(test) == ["per:employee_of", "org:founded", "no_relation"]
