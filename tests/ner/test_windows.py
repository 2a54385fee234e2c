"""Long texts: the window plan and the merge of window entities, on their own; then the predictor's
windows against the one-window encoding it replaces."""

from __future__ import annotations

import pytest

from spanfirst.ner.windows import Window, default_overlap, merge_window_spans, plan_windows


@pytest.mark.parametrize("size", [1, 2, 5, 8, 62])
@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 40, 133, 500])
def test_windows_cover_every_token_and_own_each_exactly_once(n, size):
    for overlap in sorted({0, size // 4, size // 2, size - 1} & set(range(size))):
        wins = plan_windows(n, size, overlap)
        if n <= size:
            assert wins == [Window(0, n, 0, n)]
            continue
        assert wins[0].start == 0 and wins[-1].end == n
        assert all(w.end - w.start == size for w in wins)
        owned = [t for w in wins for t in range(w.own_start, w.own_end)]
        assert owned == list(range(n))  # a partition of the tokens, in order
        for a, b in zip(wins, wins[1:]):
            assert a.end - b.start >= overlap  # neighbours overlap by at least `overlap`
            assert a.start < b.start
            # the cut is the middle of the overlap: each side keeps half of it as context
            assert a.own_end == b.own_start and a.own_end - b.start >= overlap // 2 and a.end - a.own_end >= overlap // 2
        for w in wins:
            assert w.start <= w.own_start < w.own_end <= w.end


def test_window_plan_for_a_known_case():
    # 20 tokens, windows of 8 stepping by 5; the last one is aligned to the end
    assert plan_windows(20, 8, 3) == [Window(0, 8, 0, 6), Window(5, 13, 6, 11), Window(10, 18, 11, 15),
                                      Window(12, 20, 15, 20)]


def test_bad_window_parameters_are_refused():
    with pytest.raises(ValueError, match="window size"):
        plan_windows(10, 0, 0)
    with pytest.raises(ValueError, match="overlap"):
        plan_windows(10, 4, 4)
    with pytest.raises(ValueError, match="overlap"):
        plan_windows(10, 4, -1)


def test_default_overlap_keeps_the_longest_span_inside_the_owning_window():
    assert default_overlap(126, 6) == 31  # a quarter of the window
    assert default_overlap(30, 6) == 12  # at least twice the longest span
    assert default_overlap(10, 6) == 5  # at most half the window
    for size in range(2, 200):
        ov = default_overlap(size, 6)
        assert 0 <= ov <= size // 2 < size


def span(s: int, e: int, score: float, t: str = "PS") -> tuple:
    return (s, e, t, score, 10 * s, 10 * e + 5)


def test_merge_keeps_each_window_s_own_entities_and_dedupes_the_overlap():
    a, b = Window(0, 8, 0, 6), Window(5, 13, 6, 13)
    merged = merge_window_spans([
        (a, [span(1, 2, 0.9), span(5, 5, 0.4), span(6, 7, 0.8)]),  # 6-7 lies in b's part: b reports it
        (b, [span(5, 5, 0.7), span(6, 7, 0.6), span(10, 12, 0.5)]),  # 5-5 lies in a's part
    ], 0.5, "forbid")
    assert merged == [span(1, 2, 0.9), span(5, 5, 0.4), span(6, 7, 0.6), span(10, 12, 0.5)]


def test_merge_resolves_spans_crossing_a_boundary_with_the_nesting_policy():
    a, b = Window(0, 8, 0, 6), Window(5, 13, 6, 13)
    per_window = [(a, [span(4, 6, 0.5)]), (b, [span(6, 7, 0.9)])]  # overlap on token 6
    assert merge_window_spans(per_window, 0.5, "forbid") == [span(6, 7, 0.9)]
    assert merge_window_spans(per_window, 0.5, "allow") == [span(4, 6, 0.5), span(6, 7, 0.9)]  # IoU 1/4
    # one window: nothing to merge, even overlapping spans are left as the model decoded them
    assert merge_window_spans([(Window(0, 8, 0, 8), [span(4, 6, 0.5), span(6, 7, 0.9)])], 0.5, "forbid") == \
        [span(4, 6, 0.5), span(6, 7, 0.9)]
    assert merge_window_spans([], 0.5, "forbid") == []


def test_token_spans_over_the_same_characters_are_one_entity_at_its_best_score():
    # one character split into two pieces: tokens 3 and 4 both carry its offsets 30-35
    same = [(3, 3, "PS", 0.4, 30, 35), (3, 4, "PS", 0.7, 30, 35), (4, 4, "PS", 0.5, 30, 35), (3, 4, "LC", 0.2, 30, 35)]
    assert merge_window_spans([(Window(0, 8, 0, 8), same)], 0.5, "allow") == \
        [(3, 4, "PS", 0.7, 30, 35), (3, 4, "LC", 0.2, 30, 35)]


@pytest.fixture(scope="module")
def predictor(tiny_backbone):
    import torch

    from spanfirst.backbone import load_encoder, load_tokenizer
    from spanfirst.config import NerRunConfig, apply_overrides
    from spanfirst.ner.heads.span_first import SpanFirstModel
    from spanfirst.ner.predictor import NerPredictor

    cfg = apply_overrides(NerRunConfig(), {"model.backbone": str(tiny_backbone), "model.max_length": 24,
                                        "ner.score_threshold": 0.0, "ner.length_bins": [[1, 1], [2, 2], [3, 6]],
                                        "ner.representative_lengths": [1, 2, 3]})
    torch.manual_seed(0)  # an untrained model: its heads' initialisation must not depend on the tests run before
    model = SpanFirstModel(load_encoder(str(tiny_backbone)), 2, cfg.ner, 0.0).eval()
    return NerPredictor(model, load_tokenizer(str(tiny_backbone)), cfg, {"types": ["LC", "PS"]})


def test_a_text_that_fits_is_encoded_exactly_as_before(predictor):
    from spanfirst.data.alignment import encode

    texts = ["가수 김흥국이 왕십리에서 콘서트를 열었다.", "서울", "  공백  앞뒤  "]
    wins = predictor.windows(texts)
    assert [i for i, _, _ in wins] == [0, 1, 2]
    for (_, _, got), want in zip(wins, encode(predictor.tokenizer, texts, predictor.cfg.model.max_length)):
        assert (got.input_ids, got.offsets, got.text_mask) == (want.input_ids, want.offsets, want.text_mask)


def test_long_text_windows_map_back_to_the_text_and_entities_come_from_all_of_it(predictor):
    text = " ".join(["가수 김흥국이 왕십리에서 콘서트를 열었다."] * 12)
    wins = predictor.windows([text, "", "서울"])
    long_wins = [(w, enc) for i, w, enc in wins if i == 0]
    assert len(long_wins) > 3 and [i for i, _, _ in wins if i != 0] == [2]  # the blank text has no window
    assert predictor.window_size == 24 - 2 and predictor.window_overlap == 11  # 2 x 6 capped at half the window
    for w, enc in long_wins:
        assert len(enc.input_ids) <= 24 and enc.input_ids[0] == predictor._prefix[0]
        body = [(a, b) for (a, b), m in zip(enc.offsets, enc.text_mask) if m]
        assert all(text[a:b].strip() == text[a:b] and b > a for a, b in body)
    ents = predictor.predict([text, "서울"], batch_size=4)[0]
    assert ents and max(e["end"] for e in ents) > len(text) * 3 // 4  # found near the end, not truncated
    assert all(text[e["start"]:e["end"]] == e["text"] for e in ents)
    spans = [(e["start"], e["end"]) for e in ents]
    assert spans == sorted(set(spans))  # in order, and no entity reported twice from two windows
