"""Linear patch embedding plus fixed 2-D sin-cos positions (MAE style)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mmcore.contract import Embedder, Tokens
from mmcore.errors import ConfigError


def sincos_2d(positions: Tensor, dim: int) -> Tensor:
    """[..., N, 2] (row, col) → [..., N, dim]: half the features encode the row, half the column.

    Computed from the positions themselves, so any grid size works with no
    table to interpolate and nothing cached across devices or graphs.
    """
    quarter = dim // 4
    omega = 1.0 / 10000 ** (torch.arange(quarter, device=positions.device, dtype=torch.float32) / quarter)  # [D/4]
    angles = positions.to(torch.float32)[..., None] * omega  # [..., N, 2, D/4]
    emb = torch.cat([angles.sin(), angles.cos()], dim=-1)  # [..., N, 2, D/2]
    return emb.flatten(-2)  # [..., N, D]


def _check_dim(name: str, dim: int) -> None:
    if dim % 4:
        raise ConfigError(f"model.{name} {dim} is not divisible by 4, which 2-D sin-cos positions need; accepted: multiples of 4 such as {max(4, dim // 4 * 4)}")


class PatchEmbedder(Embedder):
    def __init__(self, tokenizer, dim: int, decoder_dim: int | None) -> None:
        super().__init__()
        _check_dim("encoder.dim", dim)
        if decoder_dim is not None:
            _check_dim("decoder.dim", decoder_dim)
        self.dim, self.decoder_dim = dim, decoder_dim
        self.proj = nn.Linear(tokenizer.patch_size**2 * tokenizer.channels, dim)
        nn.init.xavier_uniform_(self.proj.weight)  # MAE treats the patch projection like a linear layer
        nn.init.zeros_(self.proj.bias)
        if decoder_dim is None:  # BERT/SimMIM style: hidden patches become a learned vector
            self.mask_token = nn.Parameter(torch.empty(dim))
            nn.init.normal_(self.mask_token, std=0.02)

    def forward(self, tokens: Tokens, hidden: Tensor | None = None) -> Tensor:
        x = self.proj(tokens.values)  # [B, N, dim]
        if hidden is not None:  # BERT/SimMIM style: the encoder sees a learned vector where a patch is hidden
            x = torch.where(hidden[..., None], self.mask_token.to(x.dtype), x)
        return x + sincos_2d(tokens.positions, self.dim).to(x.dtype)

    def decoder_positions(self, tokens: Tokens) -> Tensor:
        return sincos_2d(tokens.positions, self.decoder_dim)  # [1, N, decoder_dim]
