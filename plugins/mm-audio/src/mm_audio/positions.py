"""Fixed sin-cos position features for any number of axes, computed from the positions.

Nothing is tabulated, so any spectrogram length works without interpolating a table.
"""

from __future__ import annotations

import torch
from torch import Tensor


def sincos(positions: Tensor, dim: int) -> Tensor:
    """[..., N, A] coordinates → [..., N, dim]: each axis gets an equal even share of sin/cos
    features; the few left over when ``dim`` is not a multiple of 2A are zero."""
    axes = positions.shape[-1]
    half = dim // (2 * axes)  # frequencies per axis
    if half == 0:
        return positions.new_zeros((*positions.shape[:-1], dim), dtype=torch.float32)
    omega = 1.0 / 10000 ** (torch.arange(half, device=positions.device, dtype=torch.float32) / half)
    angles = positions.to(torch.float32)[..., None] * omega  # [..., N, A, half]
    emb = torch.cat([angles.sin(), angles.cos()], dim=-1).flatten(-2)  # [..., N, A * 2 * half]
    return torch.nn.functional.pad(emb, (0, dim - emb.shape[-1]))
