"""Pooling on hand-made tensors; the RE loss settings (focal, smoothing, class weights); schedulers."""

from __future__ import annotations

import math
import typing

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from spanfirst.config import ReConfig, TrainConfig
from spanfirst.losses import entropy_label_smoothing, focal_cross_entropy, inverse_log_frequency_weights
from spanfirst.re.pooling import EntityPooler, attention_pool, marker_pool, mean_pool, span_mask

# (B=2, T=4, H=2)
HIDDEN = torch.tensor([
    [[0.0, 1.0], [2.0, 3.0], [4.0, 5.0], [6.0, 7.0]],
    [[1.0, 0.0], [3.0, 0.0], [5.0, 2.0], [7.0, 4.0]],
])
SPANS = torch.tensor([[1, 2], [0, 3]])  # inclusive


def test_span_mask_and_mean_pool():
    assert span_mask(SPANS, 4).tolist() == [[False, True, True, False], [True, True, True, True]]
    torch.testing.assert_close(mean_pool(HIDDEN, SPANS), torch.tensor([[3.0, 4.0], [4.0, 1.5]]))
    single = torch.tensor([[3, 3], [2, 2]])
    torch.testing.assert_close(mean_pool(HIDDEN, single), torch.stack([HIDDEN[0, 3], HIDDEN[1, 2]]))


def test_marker_pool_takes_the_marker_state():
    torch.testing.assert_close(marker_pool(HIDDEN, torch.tensor([2, 0])), torch.tensor([[4.0, 5.0], [1.0, 0.0]]))


def test_attention_pool_with_a_known_scorer():
    scorer = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        scorer.weight.copy_(torch.tensor([[1.0, 0.0]]))  # score = first feature
    out = attention_pool(HIDDEN, SPANS, scorer)
    # row 0: scores 2, 4 over tokens 1..2 -> weights softmax([2, 4])
    w = torch.softmax(torch.tensor([2.0, 4.0]), 0)
    torch.testing.assert_close(out[0], w[0] * HIDDEN[0, 1] + w[1] * HIDDEN[0, 2])
    w1 = torch.softmax(torch.tensor([1.0, 3.0, 5.0, 7.0]), 0)
    torch.testing.assert_close(out[1], (w1.unsqueeze(1) * HIDDEN[1]).sum(0))
    with torch.no_grad():
        scorer.weight.zero_()  # equal scores: attention pooling is mean pooling
    torch.testing.assert_close(attention_pool(HIDDEN, SPANS, scorer), mean_pool(HIDDEN, SPANS))


@pytest.mark.parametrize("mode, use_cls, size", [("cls", False, 2), ("marker", False, 4), ("mean", True, 6),
                                                 ("attention", False, 4)])
def test_entity_pooler_concatenates(mode, use_cls, size):
    pooler = EntityPooler(mode, 2, use_cls)
    markers = torch.tensor([1, 0])
    out = pooler(HIDDEN, SPANS, SPANS, markers, markers)
    assert out.shape == (2, size) and pooler.out_size == size
    if mode == "cls":
        torch.testing.assert_close(out, HIDDEN[:, 0])
    if mode == "mean" and use_cls:
        torch.testing.assert_close(out[:, :2], HIDDEN[:, 0])
        torch.testing.assert_close(out[:, 2:4], mean_pool(HIDDEN, SPANS))
    assert (pooler.scorer is not None) == (mode == "attention")


def test_focal_with_gamma_zero_is_cross_entropy():
    torch.manual_seed(0)
    logits, target = torch.randn(8, 5), torch.randint(0, 5, (8,))
    torch.testing.assert_close(focal_cross_entropy(logits, target, gamma=0.0), F.cross_entropy(logits, target))
    w = torch.rand(5) + 0.5
    torch.testing.assert_close(focal_cross_entropy(logits, target, class_weights=w, label_smoothing=0.1),
                               F.cross_entropy(logits, target, weight=w, label_smoothing=0.1))
    assert focal_cross_entropy(logits, target, gamma=2.0) < F.cross_entropy(logits, target)


def test_re_model_loss_uses_the_configured_settings():
    from spanfirst.re.model import ReModel

    class Encoder(nn.Module):  # a stand-in with the config attribute ReModel reads
        config = type("C", (), {"hidden_size": 4})()

    torch.manual_seed(0)
    logits, target = torch.randn(6, 3), torch.tensor([0, 1, 2, 0, 1, 2])
    plain = ReModel(Encoder(), 3, ReConfig())
    torch.testing.assert_close(plain.compute_loss(logits, target), F.cross_entropy(logits, target))
    w = torch.tensor([0.5, 1.0, 2.0])
    cfg = ReConfig(focal_gamma=2.0, focal_alpha=[0.2, 0.3, 0.5])
    model = ReModel(Encoder(), 3, cfg, class_weights=w, label_smoothing=0.1)
    expected = focal_cross_entropy(logits, target, gamma=2.0, alpha=torch.tensor([0.2, 0.3, 0.5]),
                                   label_smoothing=0.1, class_weights=w)
    torch.testing.assert_close(model.compute_loss(logits, target), expected)
    assert "class_weights" not in model.state_dict()  # loss-only: not part of the checkpoint
    with pytest.raises(ValueError, match="focal_alpha"):
        ReModel(Encoder(), 4, cfg)


def test_entropy_smoothing_formula():
    # balanced over all K classes -> eps_min; a single class -> eps_max
    assert entropy_label_smoothing([5, 5, 5, 5], 0.05, 0.2) == pytest.approx(0.05)
    assert entropy_label_smoothing([9, 0, 0], 0.05, 0.2) == pytest.approx(0.2)
    counts = [6, 2, 0, 0]
    p = [0.75, 0.25]
    h = -sum(x * math.log(x) for x in p)
    assert entropy_label_smoothing(counts, 0.05, 0.2) == pytest.approx(0.2 - 0.15 * h / math.log(4))


def test_class_weights_inverse_log_frequency():
    w = inverse_log_frequency_weights([8, 2])
    torch.testing.assert_close(w, torch.tensor([1 / math.log(1.1 + 0.8), 1 / math.log(1.1 + 0.2)]))


def test_every_configured_scheduler_builds():
    from transformers import get_scheduler

    names = typing.get_args(TrainConfig.model_fields["scheduler"].annotation)
    assert {"linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup"} <= set(names)
    for name in names:
        opt = torch.optim.AdamW(nn.Linear(2, 2).parameters(), lr=1e-3)
        sched = get_scheduler(name, opt, num_warmup_steps=2, num_training_steps=10)
        lrs = []
        for _ in range(10):
            opt.step()
            sched.step()
            lrs.append(opt.param_groups[0]["lr"])
        assert all(0.0 <= lr <= 1e-3 + 1e-12 for lr in lrs), name
        if name != "constant":
            assert lrs[0] < 1e-3  # warmup


def test_type_pair_log_prior_is_each_pairs_counts_smoothed_toward_all_of_training():
    from spanfirst.re.baseline import type_pair_log_prior

    # 2 types, 3 labels; pair (0, 1) seen 3 times (labels 1, 1, 2), pair (1, 0) once (label 0)
    prior = type_pair_log_prior([0, 0, 0, 1], [1, 1, 1, 0], [1, 1, 2, 0], num_types=2, num_labels=3, strength=2.0)
    assert prior.shape == (3, 3, 3)
    overall = torch.tensor([1 + 1, 2 + 1, 1 + 1], dtype=torch.float64) / (4 + 3)  # counts plus one each
    expected = (torch.tensor([0.0, 2.0, 1.0], dtype=torch.float64) + 2.0 * overall) / (3 + 2.0)
    assert torch.allclose(prior[0, 1].exp().double(), expected, atol=1e-6)
    assert torch.allclose(prior[2, 0].exp().double(), overall, atol=1e-6)  # an unseen type: all of training
    assert torch.allclose(prior.exp().sum(-1), torch.ones(3, 3))
