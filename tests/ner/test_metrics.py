import pytest

from spanfirst.ner.metrics import confusion_matrix, lenient_f1, prf, strict_f1


def test_prf():
    assert prf(0, 0, 0) == {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    assert prf(1, 2, 4) == pytest.approx({"precision": 0.5, "recall": 0.25, "f1": 1 / 3})


GOLD = [[(0, 1, "PER"), (3, 4, "LOC")], [(0, 0, "ORG")]]
PRED = [[(0, 1, "PER"), (3, 4, "PER")], [(0, 0, "ORG"), (2, 2, "LOC")]]


def test_strict_micro_and_per_type():
    r = strict_f1(GOLD, PRED)
    assert (r["tp"], r["n_pred"], r["n_gold"]) == (2, 4, 3)
    assert r["precision"] == pytest.approx(0.5)
    assert r["recall"] == pytest.approx(2 / 3)
    assert r["f1"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    assert list(r["per_type"]) == ["LOC", "ORG", "PER"]
    assert r["per_type"]["PER"] == pytest.approx({"precision": 0.5, "recall": 1.0, "f1": 2 / 3, "support": 1})
    assert r["per_type"]["LOC"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert r["per_type"]["ORG"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}


def test_strict_ignores_extra_fields_and_counts_duplicates_once_per_copy():
    r = strict_f1([[(0, 1, "A")]], [[(0, 1, "A", 0.9), (0, 1, "A", 0.8)]])
    assert (r["tp"], r["n_pred"], r["n_gold"]) == (1, 2, 1)
    with pytest.raises(ValueError):
        strict_f1([[]], [])


def test_lenient_tolerance():
    assert lenient_f1([[(2, 5, "A")]], [[(3, 6, "A")]])["f1"] == 1.0  # both boundaries off by 1
    assert lenient_f1([[(2, 5, "A")]], [[(4, 5, "A")]])["f1"] == 0.0  # start off by 2
    assert lenient_f1([[(2, 5, "A")]], [[(3, 6, "B")]])["f1"] == 0.0  # type must match
    assert lenient_f1([[(2, 5, "A")]], [[(4, 5, "A")]], tolerance=2)["f1"] == 1.0
    assert lenient_f1([[(2, 5, "A")]], [[(3, 6, "A")]], tolerance=0)["f1"] == 0.0


def test_lenient_one_to_one_closest_first():
    r = lenient_f1([[(2, 4, "A")]], [[(3, 4, "A"), (2, 4, "A")]])
    assert (r["tp"], r["n_pred"], r["n_gold"]) == (1, 2, 1)
    assert r["precision"] == 0.5 and r["recall"] == 1.0
    # Two golds, two preds: the exact pair is matched first, the near pair second.
    r = lenient_f1([[(0, 2, "A"), (5, 6, "A")]], [[(5, 6, "A"), (1, 2, "A")]])
    assert r["tp"] == 2
    assert r["per_type"]["A"]["support"] == 2


def test_confusion_matrix():
    assert confusion_matrix([0, 1, 1, 2], [0, 2, 1, 2], 3) == [[1, 0, 0], [0, 1, 1], [0, 0, 1]]
    assert confusion_matrix([], [], 2) == [[0, 0], [0, 0]]
    with pytest.raises(ValueError):
        confusion_matrix([3], [0], 3)
