"""Linear patch embedding plus fixed 2-D (time, frequency) sin-cos positions."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mmcore.contract import Embedder, Tokens

from .positions import sincos


class PatchEmbedder(Embedder):
    def __init__(self, tokenizer, dim: int, decoder_dim: int | None) -> None:
        super().__init__()
        self.dim, self.decoder_dim = dim, decoder_dim
        self.proj = nn.Linear(tokenizer.patch_dim, dim)
        nn.init.xavier_uniform_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)
        if decoder_dim is None:  # BERT style: hidden patches become a learned vector
            self.mask_token = nn.Parameter(torch.empty(dim))
            nn.init.normal_(self.mask_token, std=0.02)

    def forward(self, tokens: Tokens, hidden: Tensor | None = None) -> Tensor:
        x = self.proj(tokens.values)  # [B, N, dim]
        if hidden is not None:
            x = torch.where(hidden[..., None], self.mask_token.to(x.dtype), x)
        return x + sincos(tokens.positions, self.dim).to(x.dtype)

    def decoder_positions(self, tokens: Tokens) -> Tensor:
        return sincos(tokens.positions, self.decoder_dim)  # [1, N, decoder_dim]
