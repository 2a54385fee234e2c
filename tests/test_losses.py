import math

import pytest
import torch
import torch.nn.functional as F

from spanfirst.losses import (
    binary_focal_loss,
    entropy_label_smoothing,
    focal_cross_entropy,
    inverse_log_frequency_weights,
    iou_partial_credit_weights,
    soft_start_targets,
)

# ---- binary focal -------------------------------------------------------------------------


def test_binary_focal_hand_computed():
    # logit 0 -> p = 0.5; target 1: BCE = log 2, (1 - p_t)^2 = 0.25, alpha_t = 0.25.
    got = binary_focal_loss(torch.tensor([0.0]), torch.tensor([1.0]), alpha=0.25, gamma=2.0)
    assert got.item() == pytest.approx(0.25 * 0.25 * math.log(2))
    # target 0 with logit log(3) -> p = 0.75, p_t = 0.25: BCE = -log 0.25, (0.75)^2, alpha_t = 0.75.
    got = binary_focal_loss(torch.tensor([math.log(3)]), torch.tensor([0.0]), alpha=0.25, gamma=2.0)
    assert got.item() == pytest.approx(0.75 * 0.75**2 * -math.log(0.25))


def test_binary_focal_gamma0_is_alpha_weighted_bce():
    torch.manual_seed(0)
    logits = torch.randn(3, 7)
    targets = torch.rand(3, 7)  # soft targets
    alpha = 0.25
    weight = alpha * targets + (1 - alpha) * (1 - targets)
    expected = F.binary_cross_entropy_with_logits(logits, targets, weight=weight)
    assert binary_focal_loss(logits, targets, alpha=alpha, gamma=0.0).item() == pytest.approx(expected.item(), rel=1e-6)
    # alpha disabled -> plain BCE
    plain = F.binary_cross_entropy_with_logits(logits, targets)
    assert binary_focal_loss(logits, targets, alpha=None, gamma=0.0).item() == pytest.approx(plain.item(), rel=1e-6)
    assert binary_focal_loss(logits, targets, alpha=-1, gamma=0.0).item() == pytest.approx(plain.item(), rel=1e-6)


def test_binary_focal_mask_and_reductions():
    logits = torch.tensor([[0.0, 2.0, -1.0, 5.0]])
    targets = torch.tensor([[1.0, 0.0, 0.0, 1.0]])
    mask = torch.tensor([[True, True, False, False]])
    each = binary_focal_loss(logits, targets, mask=mask, reduction="none")
    assert each.shape == (1, 4) and each[0, 2:].abs().sum() == 0
    assert binary_focal_loss(logits, targets, mask=mask).item() == pytest.approx(each.sum().item() / 2)
    assert binary_focal_loss(logits, targets, mask=mask, reduction="sum").item() == pytest.approx(each.sum().item())
    empty = binary_focal_loss(logits, targets, mask=torch.zeros_like(mask))
    assert empty.item() == 0.0


def test_soft_start_targets():
    gold = torch.tensor([[0.0, 1.0, 0.0, 0.0, 1.0, 0.0], [1.0, 1.0, 0.0, 0.0, 0.0, 0.0]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 0], [0, 1, 1, 1, 1, 1]], dtype=torch.bool)
    got = soft_start_targets(gold, 0.3, mask)
    expected = torch.tensor([[0.3, 1.0, 0.3, 0.3, 1.0, 0.0], [0.0, 1.0, 0.3, 0.0, 0.0, 0.0]])
    assert torch.allclose(got, expected)
    assert torch.allclose(soft_start_targets(gold[:1], 0.5), torch.tensor([[0.5, 1.0, 0.5, 0.5, 1.0, 0.5]]))


# ---- multi-class focal --------------------------------------------------------------------


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("weighted", [False, True])
def test_focal_ce_gamma0_equals_torch(smoothing, weighted):
    torch.manual_seed(1)
    logits = torch.randn(9, 4)
    target = torch.tensor([0, 1, 2, 3, 1, 1, -100, 2, 0])
    weight = torch.tensor([0.5, 2.0, 1.0, 3.0]) if weighted else None
    for reduction in ("mean", "sum", "none"):
        expected = F.cross_entropy(logits, target, weight=weight, label_smoothing=smoothing, reduction=reduction)
        got = focal_cross_entropy(logits, target, label_smoothing=smoothing, class_weights=weight, reduction=reduction)
        assert torch.allclose(got, expected, atol=1e-6), reduction


def test_focal_ce_hand_computed():
    logits = torch.zeros(1, 2)  # p = 0.5 for both classes
    assert focal_cross_entropy(logits, torch.tensor([0]), gamma=2.0).item() == pytest.approx(0.25 * math.log(2))
    alpha = torch.tensor([0.25, 0.75])
    got = focal_cross_entropy(logits, torch.tensor([1]), gamma=2.0, alpha=alpha)
    assert got.item() == pytest.approx(0.75 * 0.25 * math.log(2))
    assert focal_cross_entropy(logits, torch.tensor([1]), alpha=0.5).item() == pytest.approx(0.5 * math.log(2))


def test_focal_ce_sample_weights_weighted_mean():
    torch.manual_seed(2)
    logits = torch.randn(2, 3)
    target = torch.tensor([0, 2])
    each = F.cross_entropy(logits, target, reduction="none")
    got = focal_cross_entropy(logits, target, sample_weights=torch.tensor([1.0, 0.5]))
    assert got.item() == pytest.approx((each[0] + 0.5 * each[1]).item() / 1.5, rel=1e-6)
    w = torch.tensor([2.0, 1.0, 4.0])
    got = focal_cross_entropy(logits, target, class_weights=w, sample_weights=torch.tensor([1.0, 0.5]))
    assert got.item() == pytest.approx((2 * each[0] + 0.5 * 4 * each[1]).item() / (2 + 0.5 * 4), rel=1e-6)


def test_focal_ce_all_ignored_is_zero_with_grad():
    logits = torch.randn(2, 3, requires_grad=True)
    got = focal_cross_entropy(logits, torch.tensor([-100, -100]))
    assert got.item() == 0.0
    got.backward()
    assert logits.grad is not None and logits.grad.abs().sum() == 0


# ---- smoothing and class weights ----------------------------------------------------------


def test_entropy_label_smoothing():
    assert entropy_label_smoothing([5, 5, 5, 5]) == pytest.approx(0.05)
    assert entropy_label_smoothing(torch.tensor([10, 0, 0])) == pytest.approx(0.2)
    h = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert entropy_label_smoothing([3, 1]) == pytest.approx(0.2 - 0.15 * h / math.log(2))
    # A zero-count class still counts in K: [1, 1, 0] has H = log 2 over log 3.
    assert entropy_label_smoothing([1, 1, 0], 0.0, 1.0) == pytest.approx(1 - math.log(2) / math.log(3))
    assert entropy_label_smoothing([7]) == pytest.approx(0.2)


def test_inverse_log_frequency_weights():
    got = inverse_log_frequency_weights(torch.tensor([1, 3, 0]))
    expected = [1 / math.log(1.1 + 0.25), 1 / math.log(1.1 + 0.75), 1 / math.log(1.1)]
    assert got.dtype == torch.float32
    assert got.tolist() == pytest.approx(expected, rel=1e-6)
    assert inverse_log_frequency_weights([1, 1], c=2.0).tolist() == pytest.approx([1 / math.log(2.5)] * 2)


def test_iou_partial_credit_weights():
    cand_b = torch.tensor([0, 0, 0, 1, 1])
    cand_s = torch.tensor([0, 5, 1, 0, 7])
    cand_e = torch.tensor([2, 5, 1, 1, 8])
    gold_b = torch.tensor([0, 0, 1])
    gold_s = torch.tensor([0, 4, 7])
    gold_e = torch.tensor([1, 5, 8])
    gold_t = torch.tensor([2, 1, 3])
    w, t = iou_partial_credit_weights(cand_b, cand_s, cand_e, gold_b, gold_s, gold_e, gold_t)
    # (0,2) vs gold (0,1): 2/3 -> type 2; (5,5) vs (4,5): 1/2 -> type 1; (1,1) vs (0,1): 1/2 -> type 2;
    # sentence 1 (0,1) overlaps only sentence 0's gold -> 0, no entity; (7,8) exact -> 1, type 3.
    assert w.tolist() == pytest.approx([2 / 3, 0.5, 0.5, 0.0, 1.0])
    assert t.tolist() == [2, 1, 2, 0, 3]
    assert not w.requires_grad and w.grad_fn is None


def test_iou_partial_credit_detached_from_float_inputs():
    s = torch.tensor([0.0, 3.0], requires_grad=True)
    w, _ = iou_partial_credit_weights(torch.tensor([0, 0]), s, s + 1, torch.tensor([0]), torch.tensor([0]),
                                      torch.tensor([1]), torch.tensor([1]))
    assert not w.requires_grad
    assert w.tolist() == pytest.approx([1.0, 0.0])


def test_iou_partial_credit_no_gold():
    w, t = iou_partial_credit_weights(torch.tensor([0]), torch.tensor([0]), torch.tensor([1]),
                                      torch.tensor([], dtype=torch.long), torch.tensor([], dtype=torch.long),
                                      torch.tensor([], dtype=torch.long), torch.tensor([], dtype=torch.long))
    assert w.tolist() == [0.0] and t.tolist() == [0]
