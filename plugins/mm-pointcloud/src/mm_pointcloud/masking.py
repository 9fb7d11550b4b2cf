"""Point-group masking: random groups (Point-MAE, 60%) and a block of neighbouring groups.

Both score every group on the device and hide the lowest ``num_hidden`` with
`hide_lowest`, so every cloud hides the same count (static shapes).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from mmcore.contract import Tokens
from mmcore.errors import ConfigError
from mmcore.masking import hide_lowest, uniform_noise


@dataclass
class _Policy:
    ratio: float = 0.6

    def __post_init__(self) -> None:
        if not 0.0 <= self.ratio < 1.0:
            raise ConfigError(f"masking ratio {self.ratio!r} is out of range; accepted: 0 <= ratio < 1 (0 = plain features)")

    def num_hidden(self, num_tokens: int) -> int:
        return int(round(self.ratio * num_tokens))


@dataclass
class RandomMasking(_Policy):
    """Uniformly random groups (Point-MAE's default)."""

    ratio: float = 0.6

    def __call__(self, tokens: Tokens, generator: torch.Generator | None = None, scores: Tensor | None = None) -> Tensor:
        noise = uniform_noise((tokens.batch_size, tokens.num_tokens), tokens.values.device, generator)
        return hide_lowest(noise, self.num_hidden(tokens.num_tokens), tokens.valid)


@dataclass
class BlockMasking(_Policy):
    """The groups nearest a random seed centre: one contiguous hole per cloud (Point-MAE's "block")."""

    ratio: float = 0.6

    def __call__(self, tokens: Tokens, generator: torch.Generator | None = None, scores: Tensor | None = None) -> Tensor:
        B, G = tokens.batch_size, tokens.num_tokens
        device = tokens.values.device
        centres = tokens.positions.expand(B, -1, -1).to(torch.float32)  # [B, G, 3]
        seed = (uniform_noise((B,), device, generator) * G).long().clamp_max(G - 1)
        dist = (centres - centres[torch.arange(B, device=device), seed][:, None]).square().sum(-1)  # [B, G]
        return hide_lowest(dist + 1e-6 * uniform_noise((B, G), device, generator), self.num_hidden(G), tokens.valid)
