"""Point head: decoder states of hidden groups → K points each, scored by Chamfer distance."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mmcore.contract import Head


def chamfer(pred: Tensor, target: Tensor, kind: str = "l2") -> Tensor:
    """[..., K, 3] × [..., M, 3] → [...] symmetric Chamfer distance in float32.

    "l2": mean squared distance to the nearest point, both ways, summed (Point-MAE's loss);
    "l1": mean Euclidean distance, both ways, averaged.
    """
    d = (pred.to(torch.float32)[..., :, None, :] - target.to(torch.float32)[..., None, :, :]).square().sum(-1)
    if kind == "l1":
        d = d.clamp_min(1e-12).sqrt()
        return (d.amin(-1).mean(-1) + d.amin(-2).mean(-1)) / 2
    return d.amin(-1).mean(-1) + d.amin(-2).mean(-1)


class PointHead(Head):
    def __init__(self, tokenizer, target, dim: int) -> None:
        super().__init__()
        self.group_size, self.kind = tokenizer.group_size, target.chamfer
        self.proj = nn.Linear(dim, target.dim(tokenizer))

    def forward(self, states: Tensor) -> Tensor:
        return self.proj(states)  # [B, Kh, K*3]

    def loss(self, pred: Tensor, target: Tensor) -> Tensor:
        B, H, _ = pred.shape
        shape = (B, H, self.group_size, 3)
        return chamfer(pred.reshape(shape), target.reshape(shape), self.kind)  # [B, Kh]
