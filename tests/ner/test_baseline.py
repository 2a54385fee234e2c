from spanfirst.data.types import Example, Span
from spanfirst.ner.baseline import DictionaryBaseline


def _fit():
    return DictionaryBaseline().fit([
        Example("New York is big", [Span(0, 8, "LOC")]),
        Example("York is old", [Span(0, 4, "PER")]),
        Example("York again", [Span(0, 4, "PER")]),
        Example("York too", [Span(0, 4, "ORG")]),
        Example("Apple and Apple", [Span(0, 5, "ORG"), Span(10, 15, "PROD")]),
    ])


def test_most_frequent_type_and_ties():
    b = _fit()
    assert b.lexicon["York"] == "PER"
    assert b.lexicon["Apple"] == "ORG"  # 1 vs 1: sorted first
    assert b.lexicon["New York"] == "LOC"


def test_longest_match_first_non_overlapping():
    b = _fit()
    text = "I love New York and York."
    assert b.predict(text) == [Span(7, 15, "LOC"), Span(20, 24, "PER")]
    assert b.predict("YorkYork") == [Span(0, 4, "PER"), Span(4, 8, "PER")]
    assert b.predict("nothing here") == []
    assert DictionaryBaseline().fit([]).predict("York") == []


def test_korean_attached_particles():
    b = DictionaryBaseline().fit([Example("김흥국이 왔다", [Span(0, 3, "PS")])])
    assert b.predict("가수 김흥국이 노래했다") == [Span(3, 6, "PS")]


def test_forms_mostly_not_entities_in_training_are_filtered_out():
    train = [Example("Apple pie", [Span(0, 5, "ORG")]), Example("an apple and Apple juice", []),
             Example("Apple bought Apple", [])] + [Example("Paris is nice", [Span(0, 5, "LOC")])]
    filtered = DictionaryBaseline().fit(train)  # Apple: 1 of 4 occurrences an entity
    assert "Apple" not in filtered.lexicon and filtered.lexicon["Paris"] == "LOC"
    assert DictionaryBaseline(min_precision=0.0).fit(train).lexicon["Apple"] == "ORG"
    assert DictionaryBaseline(min_precision=0.25).fit(train).lexicon["Apple"] == "ORG"
