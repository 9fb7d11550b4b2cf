"""Point-group embedding: a mini-PointNet over each group plus an MLP on its centre (Point-MAE)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mmcore.contract import Embedder, Tokens


def mlp(*sizes: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.GELU()]
    return nn.Sequential(*layers[:-1])


class MiniPointNet(nn.Module):
    """[..., K, 3] → [..., dim]: per-point MLP, max-pool, each point re-read with the group's
    pooled feature, max-pool again — order-invariant within the group."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.first = mlp(3, 64, 128)
        self.second = mlp(256, 256, dim)

    def forward(self, points: Tensor) -> Tensor:
        f = self.first(points)  # [..., K, 128]
        pooled = f.amax(dim=-2, keepdim=True).expand_as(f)
        return self.second(torch.cat([f, pooled], dim=-1)).amax(dim=-2)


class PointGroupEmbedder(Embedder):
    def __init__(self, tokenizer, dim: int, decoder_dim: int | None) -> None:
        super().__init__()
        self.group_size = tokenizer.group_size
        self.bert_style = decoder_dim is None  # MAE style drops hidden groups instead
        self.pointnet = MiniPointNet(dim)
        self.position = mlp(3, 128, dim)
        if decoder_dim is None:  # BERT style: hidden groups become a learned vector
            self.mask_token = nn.Parameter(torch.randn(dim) * 0.02)
        else:
            self.decoder_position = mlp(3, 128, decoder_dim)

    def forward(self, tokens: Tokens, hidden: Tensor | None = None) -> Tensor:
        B, G, _ = tokens.values.shape
        x = self.pointnet(tokens.values.reshape(B, G, self.group_size, 3))  # [B, G, dim]
        if hidden is not None and self.bert_style:
            x = torch.where(hidden[..., None], self.mask_token.to(x.dtype), x)
        return x + self.position(tokens.positions.to(x.dtype))

    def decoder_positions(self, tokens: Tokens) -> Tensor:
        return self.decoder_position(tokens.positions)


def max_mean_pool(states: Tensor, valid: Tensor | None = None) -> Tensor:
    """[B, G, D] encoder states → [B, 2D]: max over groups then mean over groups (Point-MAE/Point-BERT's
    probe features); a cloud is a set, and the max keeps what is distinctive of a few groups."""
    if valid is None:
        return torch.cat([states.amax(dim=1), states.mean(dim=1)], dim=-1)
    w = valid[..., None]
    top = states.masked_fill(~w, float("-inf")).amax(dim=1)
    mean = (states * w).sum(1) / w.sum(1).clamp_min(1)
    return torch.cat([top, mean], dim=-1)
