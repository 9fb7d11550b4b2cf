"""Mixed head: squared error for numeric cells, cross-entropy over the column's categories for categorical ones."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmcore.contract import Head


class CellHead(Head):
    """Two loss parts, weighable in a recipe (``train.loss_weights.tabular/numeric``): each slot is
    scored by one of them and is zero in the other."""

    loss_parts = ("numeric", "categorical")

    def __init__(self, tokenizer, target, dim: int) -> None:
        super().__init__()
        offsets, numeric, owner = tokenizer.layout()
        self.register_buffer("offsets", offsets, persistent=False)
        self.register_buffer("numeric", numeric, persistent=False)
        self.register_buffer("owner", owner, persistent=False)
        self.proj = nn.Linear(dim, target.dim(tokenizer))
        nn.init.xavier_uniform_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, states: Tensor) -> Tensor:
        return self.proj(states)  # [B, K, 1 + categories]

    def loss(self, pred: Tensor, target: Tensor) -> dict[str, Tensor]:
        """{numeric, categorical: [B, K] float32}: MSE on the normalised value of numeric cells,
        CE among the cell's own column's categories for categorical ones."""
        pred = pred.to(torch.float32)
        value, column = target[..., 0], target[..., 1].long()  # [B, K]
        numeric = self.numeric[column]
        mse = (pred[..., 0] - value).square()
        allowed = (self.owner == column[..., None]) | numeric[..., None]  # numeric slots: any finite CE, discarded
        logits = pred[..., 1:].masked_fill(~allowed, -1e4)
        label = torch.where(numeric, torch.zeros_like(column), self.offsets[column] + value.round().long().clamp_min(0))
        label = label.clamp_max(logits.shape[-1] - 1)
        ce = F.cross_entropy(logits.flatten(0, 1), label.flatten(), reduction="none").view_as(mse)
        zero = torch.zeros_like(mse)
        return {"numeric": torch.where(numeric, mse, zero), "categorical": torch.where(numeric, zero, ce)}
