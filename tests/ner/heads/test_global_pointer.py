"""GlobalPointer pieces on hand-made tensors: rotary embeddings, scorers, masks, the multi-label loss."""

import math

import pytest
import torch

from spanfirst.ner.heads.common import span_grid_mask, span_mask
from spanfirst.ner.heads.global_pointer import (
    EfficientGlobalPointerScorer,
    GlobalPointerScorer,
    multilabel_crossentropy,
)
from spanfirst.ner.heads.rotary import rotary


def test_rotary_score_depends_only_on_the_relative_position():
    torch.manual_seed(0)
    T, D = 12, 16
    u, v = torch.randn(D), torch.randn(D)
    q = rotary(u.expand(1, T, D).clone())[0]  # the same content at every position
    k = rotary(v.expand(1, T, D).clone())[0]
    s = q @ k.T  # (T, T): s[i, j] = (R_i u)^T (R_j v)
    assert torch.allclose(s[1:, 1:], s[:-1, :-1], atol=1e-4)  # shifting both positions keeps the score
    assert s[0, 0] == pytest.approx(float(u @ v), abs=1e-5)  # position 0 is not rotated
    assert not torch.allclose(s[0, 1:], s[0, :1].expand(T - 1), atol=1e-3)  # but distance matters


def test_rotary_keeps_norms_and_rotates_feature_pairs():
    x = torch.randn(2, 7, 3, 8)  # (B, T, heads, D): positions along dim 1
    r = rotary(x)
    assert r.shape == x.shape
    assert torch.allclose(r.norm(dim=-1), x.norm(dim=-1), atol=1e-5)
    assert torch.allclose(r[:, 0], x[:, 0])
    # position 1, first pair: rotated by angle 1 * base^0 = 1 radian
    a, b = x[0, 1, 0, 0], x[0, 1, 0, 1]
    assert r[0, 1, 0, 0] == pytest.approx(float(a * math.cos(1) - b * math.sin(1)), abs=1e-5)
    assert r[0, 1, 0, 1] == pytest.approx(float(a * math.sin(1) + b * math.cos(1)), abs=1e-5)
    with pytest.raises(ValueError, match="even"):
        rotary(torch.randn(1, 3, 5))


@pytest.mark.parametrize("scorer_cls", [GlobalPointerScorer, EfficientGlobalPointerScorer])
@torch.no_grad()
def test_scores_of_identical_tokens_depend_only_on_their_distance(scorer_cls):
    torch.manual_seed(0)
    scorer = scorer_cls(hidden=10, num_types=3, head_size=8)
    h = torch.randn(1, 1, 10).expand(2, 9, 10)
    s = scorer(h)  # (B, K, T, T)
    assert s.shape == (2, 3, 9, 9)
    for d in range(-8, 9):
        diag = torch.diagonal(s, offset=d, dim1=-2, dim2=-1)  # (B, K, T - |d|)
        assert torch.allclose(diag, diag[..., :1].expand_as(diag), atol=1e-5)


@torch.no_grad()
def test_global_pointer_scorer_is_the_rotary_dot_product_per_type():
    torch.manual_seed(1)
    H, K, D, T = 6, 2, 4, 5
    scorer = GlobalPointerScorer(H, K, D)
    h = torch.randn(1, T, H)
    s = scorer(h)
    qk = scorer.proj(h).view(1, T, K, 2, D)
    for k in range(K):
        q = rotary(qk[:, :, k, 0, :].contiguous())[0]  # (T, D)
        key = rotary(qk[:, :, k, 1, :].contiguous())[0]
        assert torch.allclose(s[0, k], q @ key.T / math.sqrt(D), atol=1e-5)


@torch.no_grad()
def test_efficient_global_pointer_is_a_shared_score_plus_per_type_start_and_end_bias():
    torch.manual_seed(2)
    H, K, D, T = 6, 3, 4, 5
    scorer = EfficientGlobalPointerScorer(H, K, D)
    h = torch.randn(1, T, H)
    s = scorer(h)[0]  # (K, T, T)
    p = scorer.proj(h)[0]  # (T, 2D): [q_i; k_i]
    q, key = rotary(p[None, :, :D])[0], rotary(p[None, :, D:])[0]
    w, b = scorer.type_bias.weight, scorer.type_bias.bias  # (2K, 2D), (2K,)
    for k in range(K):
        for i in range(T):
            for j in range(T):
                want = q[i] @ key[j] / math.sqrt(D) + (w[k] @ p[i] + b[k]) / 2 + (w[K + k] @ p[j] + b[K + k]) / 2
                assert s[k, i, j] == pytest.approx(float(want), abs=1e-5)


def test_span_masks_keep_text_spans_up_to_the_width():
    text = torch.tensor([[False, True, True, False, True, False]])  # <s> a b (hole) c </s>
    grid = span_grid_mask(text, max_width=3)[0]
    assert {tuple(x) for x in grid.nonzero().tolist()} == {(1, 1), (1, 2), (2, 2), (2, 4), (4, 4)}
    by_width = span_mask(text, max_width=3)[0]  # (T, W): start i, end i + w
    assert {(i, i + w) for i, w in by_width.nonzero().tolist()} == {(1, 1), (1, 2), (2, 2), (2, 4), (4, 4)}


def test_multilabel_loss_on_hand_computed_cases():
    s = torch.tensor([[2.0, -1.0, 0.5]])
    # one positive (2.0): log(1 + e^-2) + log(1 + e^-1 + e^0.5)
    got = multilabel_crossentropy(s, torch.tensor([[1, 0, 0]]))
    want = math.log(1 + math.exp(-2)) + math.log(1 + math.exp(-1) + math.exp(0.5))
    assert float(got[0]) == pytest.approx(want, abs=1e-6)
    # no positive: only the negative term
    got = multilabel_crossentropy(s, torch.tensor([[0, 0, 0]]))
    assert float(got[0]) == pytest.approx(math.log(1 + math.exp(2) + math.exp(-1) + math.exp(0.5)), abs=1e-6)
    # all positive: only the positive term
    got = multilabel_crossentropy(s, torch.tensor([[1, 1, 1]]))
    assert float(got[0]) == pytest.approx(math.log(1 + math.exp(-2) + math.exp(1) + math.exp(-0.5)), abs=1e-6)
    # masked out entries take part in neither sum
    got = multilabel_crossentropy(s, torch.tensor([[1, 0, 0]]), mask=torch.tensor([[True, False, True]]))
    assert float(got[0]) == pytest.approx(math.log(1 + math.exp(-2)) + math.log(1 + math.exp(0.5)), abs=1e-6)
    # a confident correct scorer costs almost nothing; a wrong one costs about its margin
    target = torch.tensor([[1, 0]])
    assert float(multilabel_crossentropy(torch.tensor([[20.0, -20.0]]), target)[0]) < 1e-8
    assert float(multilabel_crossentropy(torch.tensor([[-20.0, -20.0]]), target)[0]) == pytest.approx(20, abs=1e-6)


def test_multilabel_loss_gradient_ignores_masked_entries():
    s = torch.tensor([[1.0, 3.0, -2.0, 0.0]], requires_grad=True)
    loss = multilabel_crossentropy(s, torch.tensor([[1, 0, 0, 0]]), mask=torch.tensor([[True, True, True, False]]))
    loss.sum().backward()
    assert torch.isfinite(s.grad).all() and s.grad[0, 3] == 0
    assert s.grad[0, 0] < 0 < s.grad[0, 1]  # push the positive up, the negatives down
