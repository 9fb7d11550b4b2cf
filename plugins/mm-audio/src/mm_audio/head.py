"""Regression head: decoder states at hidden patches → patch values, MSE per token."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mmcore.contract import Head


class PatchHead(Head):
    def __init__(self, tokenizer, target, dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, target.dim(tokenizer))
        nn.init.xavier_uniform_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, states: Tensor) -> Tensor:
        return self.proj(states)

    def loss(self, pred: Tensor, target: Tensor) -> Tensor:
        """[B, K] float32 mean squared error per hidden patch."""
        return (pred.to(torch.float32) - target.to(torch.float32)).square().mean(dim=-1)
