"""1D non-maximum suppression over inclusive token spans, with a nesting policy.

Policies:
  * ``allow``: a kept span suppresses only spans with IoU > threshold (nesting and crossing kept).
  * ``partial``: as ``allow``, and crossing spans (overlapping, neither inside the other) are
    suppressed too; nested spans survive unless their IoU exceeds the threshold.
  * ``forbid``: a kept span suppresses every span overlapping it (flat output).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor

Nesting = Literal["allow", "partial", "forbid"]


def iou_1d(a_start: Tensor, a_end: Tensor, b_start: Tensor, b_end: Tensor) -> Tensor:
    """Pairwise IoU of inclusive token spans: (Na,) x (Nb,) -> (Na, Nb) float."""
    a_s, a_e = a_start.long().unsqueeze(1), a_end.long().unsqueeze(1)  # (Na, 1)
    b_s, b_e = b_start.long().unsqueeze(0), b_end.long().unsqueeze(0)  # (1, Nb)
    inter = (torch.minimum(a_e, b_e) - torch.maximum(a_s, b_s) + 1).clamp(min=0)  # (Na, Nb)
    union = (a_e - a_s + 1) + (b_e - b_s + 1) - inter  # (Na, Nb)
    return inter.float() / union.clamp(min=1).float()


def _as_long(x: Tensor | Sequence[int]) -> Tensor:
    return torch.as_tensor(x).long().reshape(-1).cpu()


def nms_1d(
    starts: Tensor | Sequence[int],
    ends: Tensor | Sequence[int],
    scores: Tensor | Sequence[float],
    iou_threshold: float = 0.5,
    max_outputs: int = 10,
    nesting: Nesting = "forbid",
) -> list[int]:
    """Indices of the kept spans in descending score order (ties: shorter span, then earlier start)."""
    if nesting not in ("allow", "partial", "forbid"):
        raise ValueError(f"unknown nesting policy {nesting!r}")
    s, e = _as_long(starts), _as_long(ends)  # (N,)
    sc = torch.as_tensor(scores).reshape(-1).double().cpu()  # (N,)
    n = s.numel()
    if n == 0 or max_outputs <= 0:
        return []
    order = sorted(range(n), key=lambda i: (-float(sc[i]), int(e[i] - s[i]), int(s[i]), i))
    iou = iou_1d(s, e, s, e)  # (N, N)
    overlap = (torch.minimum(e[:, None], e[None, :]) >= torch.maximum(s[:, None], s[None, :]))  # (N, N)
    nested = ((s[:, None] <= s[None, :]) & (e[None, :] <= e[:, None])) | (
        (s[None, :] <= s[:, None]) & (e[:, None] <= e[None, :])
    )  # (N, N): one inside the other
    suppress = iou > iou_threshold
    if nesting == "partial":
        suppress |= overlap & ~nested
    elif nesting == "forbid":
        suppress |= overlap

    kept: list[int] = []
    removed = torch.zeros(n, dtype=torch.bool)
    for i in order:
        if removed[i]:
            continue
        kept.append(i)
        if len(kept) >= max_outputs:
            break
        removed |= suppress[i]
    return kept


def overlap_rate(spans: Sequence[Sequence[Sequence[int]]]) -> float:
    """Share of spans (``(start, end, ...)``, end inclusive, grouped per sentence) that overlap
    another span of the same sentence; 0.0 without spans."""
    total = overlapping = 0
    for sentence in spans:
        bounds = [(int(sp[0]), int(sp[1])) for sp in sentence]
        total += len(bounds)
        for i, (a, b) in enumerate(bounds):
            if any(j != i and max(a, c) <= min(b, d) for j, (c, d) in enumerate(bounds)):
                overlapping += 1
    return overlapping / total if total else 0.0
