"""Cell targets: the cell's token value together with its column id.

The head sees only decoder states, so the target carries the column, which
says whether a slot is scored by squared error or by cross-entropy and
over which categories.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from mmcore.contract import Tokens


@dataclass
class CellTarget:
    """Numeric cells: the normalised value; categorical cells: the category index."""

    def dim(self, tokenizer) -> int:
        return 1 + len(tokenizer.layout()[2])  # one regression output + every column's category logits

    def __call__(self, tokens: Tokens) -> Tensor:
        columns = tokens.positions[..., 0].expand(tokens.batch_size, -1)  # [B, N]
        return torch.stack([tokens.values[..., 0].to(torch.float32), columns.to(torch.float32)], dim=-1)  # [B, N, 2]

    def to_values(self, pred: Tensor, tokens: Tokens, index: Tensor) -> Tensor:
        """[B, K, 1 + categories] predictions → [B, K, 1] token values (argmax category for categorical cells)."""
        columns = tokens.positions[..., 0].long().expand(tokens.batch_size, -1).gather(1, index)  # [B, K]
        return pred_to_values(pred, columns, tokens)


def pred_to_values(pred: Tensor, columns: Tensor, tokens: Tokens) -> Tensor:
    layout = tokens.meta.get("layout")
    if layout is None:  # numeric-only reading: category logits unknown here
        return pred[..., :1].to(torch.float32)
    offsets, numeric, owner = (t.to(pred.device) for t in layout)  # see TableTokenizer.layout
    logits = pred[..., 1:].to(torch.float32).masked_fill(owner != columns[..., None], float("-inf"))
    category = (logits.argmax(-1) - offsets[columns]).to(torch.float32)
    return torch.where(numeric[columns], pred[..., 0].to(torch.float32), category)[..., None]
