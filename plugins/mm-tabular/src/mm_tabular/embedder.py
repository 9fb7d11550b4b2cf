"""Cell embedding: a column embedding plus a value embedding.

Numeric cells: a per-column affine map of the normalised value (``x * w_c + b_c``);
categorical cells: a row of one table holding every column's categories.
The column embedding is the token's position, so the backbone needs none.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mmcore.contract import Embedder, Tokens


class _CellValues(nn.Module):
    """[B, N, 1] token values → [B, N, dim] value embeddings (numeric or categorical per column)."""

    def __init__(self, tokenizer, dim: int) -> None:
        super().__init__()
        offsets, numeric, owner = tokenizer.layout()
        total = len(owner)
        C = tokenizer.num_columns
        self.register_buffer("offsets", offsets, persistent=False)
        self.register_buffer("numeric", numeric, persistent=False)
        self.weight = nn.Parameter(torch.randn(C, dim) * 0.02)
        self.bias = nn.Parameter(torch.zeros(C, dim))
        self.categories = nn.Embedding(total, dim)
        nn.init.normal_(self.categories.weight, std=0.02)

    def forward(self, values: Tensor) -> Tensor:
        x = values[..., 0].to(torch.float32)  # [B, N]
        num = x[..., None] * self.weight + self.bias  # [B, N, dim]
        index = (x.round().long().clamp_min(0) + self.offsets).clamp_max(self.categories.num_embeddings - 1)
        cat = self.categories(torch.where(self.numeric, torch.zeros_like(index), index))
        return torch.where(self.numeric[:, None], num, cat)


class CellEmbedder(Embedder):
    def __init__(self, tokenizer, dim: int, decoder_dim: int | None) -> None:
        super().__init__()
        C = tokenizer.num_columns
        self.bert_style = decoder_dim is None  # MAE style drops hidden cells instead
        self.values = _CellValues(tokenizer, dim)
        self.column = nn.Embedding(C, dim)
        nn.init.normal_(self.column.weight, std=0.02)
        if decoder_dim is None:  # BERT style: hidden cells become a learned vector
            self.mask_token = nn.Parameter(torch.randn(dim) * 0.02)
        else:
            self.decoder_column = nn.Embedding(C, decoder_dim)
            nn.init.normal_(self.decoder_column.weight, std=0.02)

    def _columns(self, tokens: Tokens) -> Tensor:
        return tokens.positions[..., 0].long()  # [1 or B, N]

    def forward(self, tokens: Tokens, hidden: Tensor | None = None) -> Tensor:
        x = self.values(tokens.values)
        if hidden is not None and self.bert_style:
            x = torch.where(hidden[..., None], self.mask_token.to(x.dtype), x)
        return x + self.column(self._columns(tokens))

    def decoder_positions(self, tokens: Tokens) -> Tensor:
        return self.decoder_column(self._columns(tokens))
