"""BIO tagging: gold spans -> tags, tags -> spans."""

import torch

from spanfirst.ner.heads.bio import IGNORE, bio_targets, bio_to_spans, flat_gold
from spanfirst.ner.heads.common import GoldSpans

O = 0


def B(t: int) -> int:
    return 2 * t - 1


def I(t: int) -> int:  # noqa: E743
    return 2 * t


def gold(*spans: tuple[int, int, int, int]) -> GoldSpans:
    return GoldSpans(*(torch.tensor([sp[k] for sp in spans], dtype=torch.long) for k in range(4)))


def test_targets_tag_each_gold_span_and_ignore_non_text_tokens():
    text = torch.tensor([[False, True, True, True, True, True, False],
                         [False, True, True, False, False, False, False]])
    g = gold((0, 1, 2, 2), (0, 4, 4, 1), (1, 1, 2, 3))  # (batch, start, end, type)
    tags = bio_targets(g, text)
    assert tags[0].tolist() == [IGNORE, B(2), I(2), O, B(1), O, IGNORE]
    assert tags[1].tolist() == [IGNORE, B(3), I(3), IGNORE, IGNORE, IGNORE, IGNORE]


def test_overlapping_gold_keeps_the_earlier_longer_span():
    g = gold((0, 1, 3, 1), (0, 2, 2, 2), (0, 3, 5, 3), (1, 2, 2, 2), (0, 1, 3, 2))
    # (0,1..3) comes first; (0,2..2) is inside it, (0,3..5) crosses it, the same span with another
    # type repeats it: all three dropped; sentence 1's span overlaps nothing there
    assert flat_gold(g).tolist() == [True, False, False, True, False]
    tags = bio_targets(g, torch.ones(2, 7, dtype=torch.bool))
    assert tags[0].tolist() == [O, B(1), I(1), I(1), O, O, O]


def test_decoding_reads_b_and_i_runs_and_starts_a_span_at_a_stray_i():
    tags = [O, B(1), I(1), I(1), O, I(2), I(2), B(2), I(1), O, B(3)]
    probs = [1.0, 0.9, 0.8, 0.7, 1.0, 0.6, 0.4, 0.5, 0.3, 1.0, 0.2]
    text = [True] * len(tags)
    got = bio_to_spans(tags, probs, text)
    want = [(1, 3, 1, 0.8), (5, 6, 2, 0.5), (7, 7, 2, 0.5), (8, 8, 1, 0.3), (10, 10, 3, 0.2)]
    assert [(s, e, t) for s, e, t, _ in got] == [(s, e, t) for s, e, t, _ in want]
    assert [round(sc, 6) for *_, sc in got] == [sc for *_, sc in want]


def test_decoding_skips_non_text_tokens_without_breaking_a_span():
    tags = [B(1), B(1), I(1), I(2), I(1), I(1), O]
    text = [False, True, False, False, True, True, False]  # <s>, a, hole, hole, b, c, </s>
    got = bio_to_spans(tags, [0.5] * len(tags), text)
    assert [(s, e, t) for s, e, t, _ in got] == [(1, 5, 1)]
    assert bio_to_spans([O, O], [1.0, 1.0], [True, True]) == []
