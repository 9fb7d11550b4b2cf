"""Device-side helpers for masking policies: no host sync, static shapes."""

from __future__ import annotations

import torch
from torch import Tensor


def uniform_noise(shape: tuple[int, ...], device: torch.device, generator: torch.Generator | None) -> Tensor:
    """Uniform [0, 1) noise drawn from ``generator`` when given (deterministic masks)."""
    if generator is None:  # passing generator=None breaks torch.compile with dynamic shapes
        return torch.rand(shape, device=device)
    return torch.rand(shape, device=device, generator=generator)


def hide_lowest(scores: Tensor, num_hidden: int, valid: Tensor | None = None) -> Tensor:
    """Hide the ``num_hidden`` lowest-scoring tokens of each sample.

    scores: [B, N] float; valid: [B, N] bool or None. Void tokens rank after
    every valid one, so they are hidden only when a sample has fewer valid
    tokens than ``num_hidden`` (and then never scored). Returns [B, N] bool
    with exactly ``num_hidden`` True per row.
    """
    if valid is not None:
        scores = scores + (~valid).to(scores.dtype) * (scores.abs().amax() + 2.0)
    ranks = scores.argsort(dim=1).argsort(dim=1)
    return ranks < num_hidden


def hide_fraction_of_valid(scores: Tensor, ratio: float, valid: Tensor) -> Tensor:
    """Hide ``round(ratio * valid_length)`` lowest-scoring valid tokens per sample.

    For variable-length batches: the count follows each sample's valid length
    (a device tensor), so no host sync; at most ``ceil(ratio * N)`` per row.
    """
    scores = scores.masked_fill(~valid, float("inf"))
    ranks = scores.argsort(dim=1).argsort(dim=1)
    budget = (valid.sum(dim=1, keepdim=True).to(torch.float32) * ratio).round().long()
    return (ranks < budget) & valid
