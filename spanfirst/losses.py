"""Losses and loss-shaping helpers shared by NER and RE (all batched tensor work)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

Reduction = Literal["mean", "sum", "none"]


def binary_focal_loss(
    logits: Tensor,
    targets: Tensor,
    alpha: float | None = 0.25,
    gamma: float = 2.0,
    mask: Tensor | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    """Sigmoid focal loss with (possibly soft) targets in [0, 1].

    ``loss = alpha_t * (1 - p_t)^gamma * BCE`` with ``p_t = p*t + (1-p)*(1-t)`` and
    ``alpha_t = alpha*t + (1-alpha)*(1-t)``; ``alpha`` None or < 0 disables the weighting.
    ``mean`` averages over the masked-in elements (0 when there are none); ``none`` returns the
    elementwise loss with masked-out elements set to 0.
    """
    x = logits.float()
    t = targets.to(x.dtype)
    loss = F.binary_cross_entropy_with_logits(x, t, reduction="none")  # (...)
    if gamma != 0:
        p = torch.sigmoid(x)
        p_t = p * t + (1 - p) * (1 - t)
        loss = loss * (1 - p_t).clamp(min=0).pow(gamma)
    if alpha is not None and alpha >= 0:
        loss = loss * (alpha * t + (1 - alpha) * (1 - t))
    if mask is not None:
        m = mask.to(loss.dtype)
        loss = loss * m
        count = m.sum()
    else:
        count = torch.tensor(float(loss.numel()), device=loss.device)
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / count.clamp(min=1)


def soft_start_targets(gold: Tensor, neighbour: float = 0.3, text_mask: Tensor | None = None) -> Tensor:
    """Gold starts 1.0, their +-1 neighbours ``max(existing, neighbour)``, masked positions 0: (B, T)."""
    gold = gold.float()  # (B, T)
    left = F.pad(gold[:, 1:], (0, 1))  # (B, T): value of the next token
    right = F.pad(gold[:, :-1], (1, 0))  # (B, T): value of the previous token
    near = (torch.maximum(left, right) > 0).to(gold.dtype) * neighbour
    out = torch.maximum(gold, near)
    if text_mask is not None:
        out = out * text_mask.to(out.dtype)
    return out


def focal_cross_entropy(
    logits: Tensor,
    target: Tensor,
    gamma: float = 0.0,
    alpha: float | Tensor | None = None,
    label_smoothing: float = 0.0,
    class_weights: Tensor | None = None,
    ignore_index: int = -100,
    sample_weights: Tensor | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    """Multi-class focal loss with label smoothing, class weights and per-sample weights.

    Per sample (target y, C classes, class weights w, smoothing eps)::

        ce   = (1 - eps) * w[y] * -log p_y + eps / C * sum_c w[c] * -log p_c   (torch's smoothed CE)
        loss = alpha_y * (1 - p_y)^gamma * sample_weight * ce

    ``alpha`` is a scalar or one factor per class; it scales the loss without entering the
    mean's denominator. ``mean`` divides by ``sum(w[y] * sample_weight)`` over non-ignored
    samples, which is torch's weighted mean when there are no sample weights (so gamma=0 and
    alpha=None equal ``F.cross_entropy``); 0 when nothing is left.
    """
    x = logits.float()  # (N, C)
    N, C = x.shape
    valid = target != ignore_index  # (N,)
    y = torch.where(valid, target, torch.zeros_like(target)).long()  # (N,)
    logp = F.log_softmax(x, dim=-1)  # (N, C)
    nll = -logp.gather(1, y.unsqueeze(1)).squeeze(1)  # (N,)
    w = class_weights.to(x) if class_weights is not None else torch.ones(C, device=x.device, dtype=x.dtype)
    w_y = w[y]  # (N,)
    loss = (1 - label_smoothing) * w_y * nll  # (N,)
    if label_smoothing > 0:
        loss = loss + label_smoothing / C * -(logp * w).sum(dim=1)
    if gamma != 0:
        p_y = torch.exp(-nll)
        loss = loss * (1 - p_y).clamp(min=0).pow(gamma)
    if alpha is not None:
        loss = loss * (alpha.to(x)[y] if isinstance(alpha, Tensor) else float(alpha))
    denom = w_y
    if sample_weights is not None:
        sw = sample_weights.to(x)
        loss = loss * sw
        denom = denom * sw
    vf = valid.to(x.dtype)
    loss = loss * vf
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    total = (denom * vf).sum()
    return torch.where(total > 0, loss.sum() / total.clamp(min=1e-12), loss.sum() * 0.0)


def _counts(label_counts: Tensor | Sequence[float]) -> Tensor:
    return torch.as_tensor(label_counts, dtype=torch.float64).reshape(-1)


def entropy_label_smoothing(label_counts: Tensor | Sequence[float], eps_min: float = 0.05, eps_max: float = 0.2) -> float:
    """``eps = eps_max - (eps_max - eps_min) * H / log K`` over the normalised label distribution
    (K counts all classes, zero counts included): balanced -> eps_min, a single class -> eps_max.
    Fewer than two classes or no labels -> eps_max."""
    counts = _counts(label_counts)
    K = counts.numel()
    total = float(counts.sum())
    if K < 2 or total <= 0:
        return float(eps_max)
    p = counts / total
    nz = p[p > 0]
    H = float(-(nz * nz.log()).sum())
    return float(eps_max - (eps_max - eps_min) * H / math.log(K))


def inverse_log_frequency_weights(counts: Tensor | Sequence[float], c: float = 1.1) -> Tensor:
    """ENet-style class weights ``1 / log(c + freq)`` with ``freq`` the relative class frequency: (C,) float."""
    n = _counts(counts)
    freq = n / n.sum() if float(n.sum()) > 0 else torch.zeros_like(n)
    return (1.0 / torch.log(c + freq)).float()


def iou_partial_credit_weights(
    cand_batch: Tensor,
    cand_start: Tensor,
    cand_end: Tensor,
    gold_batch: Tensor,
    gold_start: Tensor,
    gold_end: Tensor,
    gold_type: Tensor,
) -> tuple[Tensor, Tensor]:
    """For each candidate: the max IoU with a gold span of its sentence (float, detached) and
    that gold span's type (long; 0 = no entity when the IoU is 0). Ties: the first gold span."""
    N, G = cand_start.numel(), gold_start.numel()
    device = cand_start.device
    if N == 0 or G == 0:
        return torch.zeros(N, device=device), torch.zeros(N, dtype=torch.long, device=device)
    c_s, c_e = cand_start.long().unsqueeze(1), cand_end.long().unsqueeze(1)  # (N, 1)
    g_s, g_e = gold_start.long().to(device).unsqueeze(0), gold_end.long().to(device).unsqueeze(0)  # (1, G)
    inter = (torch.minimum(c_e, g_e) - torch.maximum(c_s, g_s) + 1).clamp(min=0)  # (N, G)
    union = (c_e - c_s + 1) + (g_e - g_s + 1) - inter
    iou = inter.float() / union.clamp(min=1).float()  # (N, G)
    same = cand_batch.long().unsqueeze(1) == gold_batch.long().to(device).unsqueeze(0)  # (N, G)
    iou = torch.where(same, iou, torch.zeros_like(iou))
    best, which = iou.max(dim=1)  # (N,)
    target = torch.where(best > 0, gold_type.long().to(device)[which], torch.zeros_like(which))
    return best.detach(), target
