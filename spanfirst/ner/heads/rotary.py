"""Rotary position embeddings (RoPE, Su et al. 2021), as GlobalPointer uses them.

Each pair of features ``(x[2m], x[2m+1])`` at position ``p`` is rotated by the angle
``p * base^(-2m / D)``. Rotations compose, ``R_i^T R_j = R_{j-i}``, so the dot product of a
rotated query at ``i`` and a rotated key at ``j`` depends on their content and on ``j - i`` only.
"""

from __future__ import annotations

import torch
from torch import Tensor


def rotary(x: Tensor, base: float = 10000.0) -> Tensor:
    """``x`` of shape (B, T, ..., D) with D even, rotated by each row's position along dim 1."""
    T, D = x.shape[1], x.shape[-1]
    if D % 2:
        raise ValueError(f"rotary embeddings need an even size, got {D}")
    inv_freq = base ** (-torch.arange(0, D, 2, device=x.device, dtype=torch.float32) / D)  # (D/2,)
    angle = torch.arange(T, device=x.device, dtype=torch.float32).unsqueeze(1) * inv_freq  # (T, D/2)
    shape = (1, T) + (1,) * (x.dim() - 3) + (D // 2,)
    cos, sin = angle.cos().view(shape), angle.sin().view(shape)
    x1, x2 = x.float()[..., 0::2], x.float()[..., 1::2]
    rotated = torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)  # (..., D/2, 2)
    return rotated.flatten(-2).to(x.dtype)
