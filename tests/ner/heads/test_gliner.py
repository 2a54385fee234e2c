"""GLiNER pieces: the type prompt, negative type sampling, span representations, decoding."""

import random

import pytest
import torch

from spanfirst.ner.heads.common import span_mask
from spanfirst.ner.heads.gliner import (
    ENT_TOKEN,
    SEP_TOKEN,
    SpanRepresentation,
    TypePrompts,
    add_prompt_tokens,
    decode_span_scores,
    greedy_spans,
    sample_prompt_types,
)


@pytest.fixture(scope="module")
def tokenizer(tiny_backbone):
    from spanfirst.backbone import load_tokenizer

    tok = load_tokenizer(str(tiny_backbone))
    assert add_prompt_tokens(tok) == 2 and add_prompt_tokens(tok) == 0  # once only
    return tok


def test_prompt_puts_each_type_after_an_ent_token_and_ends_with_sep(tokenizer):
    prompts = TypePrompts.from_tokenizer(tokenizer, ["PS", "LC", "날짜"])
    ent, sep = tokenizer.convert_tokens_to_ids([ENT_TOKEN, SEP_TOKEN])
    assert (prompts.ent_id, prompts.sep_id, prompts.lead) == (ent, sep, 1)  # after <s>
    ids, pos = prompts.build([2, 0])
    assert ids == [ent, *prompts.pieces[2], ent, *prompts.pieces[0], sep]
    assert pos == [0, 1 + len(prompts.pieces[2])] and all(ids[p] == ent for p in pos)
    assert tokenizer.decode(prompts.pieces[2]).strip() == "날짜"
    assert prompts.length() == 4 + sum(len(p) for p in prompts.pieces)
    assert TypePrompts.from_dict(prompts.names, prompts.to_dict()) == prompts


def test_prompt_rejects_bad_type_names_and_a_tokenizer_without_prompt_tokens(tokenizer, tiny_backbone):
    from spanfirst.backbone import load_tokenizer

    for names in ([], ["PS", "PS"], ["PS", " "]):
        with pytest.raises(ValueError, match="distinct non-empty"):
            TypePrompts.from_tokenizer(tokenizer, names)
    with pytest.raises(ValueError, match=r"\[ENT\]"):
        TypePrompts.from_tokenizer(load_tokenizer(str(tiny_backbone)), ["PS"])


def test_negative_sampling_keeps_gold_types_adds_absent_ones_and_shuffles():
    orders, sizes = set(), set()
    for seed in range(200):
        rng = random.Random(seed)
        got = sample_prompt_types({1, 4}, num_types=8, max_neg_ratio=2, rng=rng)
        assert {1, 4} <= set(got) and len(got) == len(set(got)) and set(got) <= set(range(8))
        assert len(got) - 2 in (0, 2, 4)  # randint(0, 2) negatives per gold type
        orders.add(tuple(got[:2]) if len(got) == 2 else None)
        sizes.add(len(got))
    assert sizes == {2, 4, 6} and {(1, 4), (4, 1)} <= orders
    assert sample_prompt_types({0, 1, 2}, 3, 5, rng=random.Random(0)).__len__() == 3  # no absent type left
    assert len(sample_prompt_types(set(), 5, 0, rng=random.Random(0))) == 1  # never an empty prompt
    dropped = {len(sample_prompt_types({0, 1, 2, 3}, 6, 0, drop=True, rng=random.Random(s))) for s in range(50)}
    assert dropped == {1, 2, 3, 4}


@torch.no_grad()
def test_span_representation_is_an_ffn_of_start_and_end_states():
    torch.manual_seed(0)
    rep = SpanRepresentation(hidden=6, max_width=3, dropout=0.0)
    h = torch.randn(2, 5, 6)
    out = rep(h)  # (B, T, W, H)
    assert out.shape == (2, 5, 3, 6)
    w1 = torch.cat([rep.start.weight, rep.end.weight], dim=1)  # Linear(2H, 4H) on [h_i; h_j]
    for b, i, w in [(0, 0, 0), (1, 2, 2), (0, 4, 0), (1, 1, 1)]:
        x = torch.cat([h[b, i], h[b, i + w]])
        want = rep.out(w1 @ x + rep.start.bias)
        assert torch.allclose(out[b, i, w], want, atol=1e-5)


def test_greedy_spans_flat_and_nested():
    start = torch.tensor([0, 0, 2, 3, 6])
    end = torch.tensor([4, 1, 2, 5, 6])
    score = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5])
    # flat: (0,4) wins and removes everything overlapping it
    assert greedy_spans(start, end, score, nested=False) == [0, 4]
    # nested: spans inside (0,4) stay, (3,5) crosses it and goes
    assert greedy_spans(start, end, score, nested=True) == [0, 1, 2, 4]


def test_decoding_synthetic_scores_flat_and_nested():
    T, W, K = 8, 4, 2
    text = torch.tensor([[False] + [True] * 6 + [False]])  # tokens 1..6 are text
    probs = torch.zeros(1, T, W, K)
    probs[0, 1, 3, 0] = 0.9  # (1, 4) type 1
    probs[0, 1, 3, 1] = 0.7  # same span, type 2: one type per span, the best
    probs[0, 2, 1, 1] = 0.8  # (2, 3) type 2: nested in (1, 4)
    probs[0, 4, 2, 0] = 0.75  # (4, 6) type 1: crosses (1, 4)
    probs[0, 6, 0, 1] = 0.6  # (6, 6) type 2: inside (4, 6)
    probs[0, 5, 3, 0] = 0.99  # (5, 8): leaves the text, masked
    probs[0, 6, 1, 1] = 0.4  # below the threshold
    mask = span_mask(text, W)
    flat = decode_span_scores(probs, mask, 0.5, nested=False)[0][0]
    assert [(s, e, t) for s, e, t, _ in flat] == [(1, 4, 1), (6, 6, 2)]
    assert flat[0][3] == pytest.approx(0.9)
    nested = decode_span_scores(probs, mask, 0.5, nested=True)[0][0]
    assert [(s, e, t) for s, e, t, _ in nested] == [(1, 4, 1), (2, 3, 2), (6, 6, 2)]
    assert decode_span_scores(probs, mask, 0.95, nested=True) == ([[]], None)
    # "auto" (a dev calibration follows): every span from the floor up, greedy as before, so
    # keeping those at or above a threshold is what decoding at that threshold gives
    for nested in (False, True):
        spans, exact_from = decode_span_scores(probs, mask, "auto", nested=nested, text_mask=text)
        for t in (0.5, 0.65, 0.85):
            assert [sp for sp in spans[0] if sp[3] >= t] == decode_span_scores(probs, mask, t, nested=nested)[0][0]
        assert exact_from == [pytest.approx(0.01)]  # 7 spans under the cap of 2 per text token
