"""Video masking: tube (VideoMAE) and random tubelets.

Both score every tubelet on the device from the generator's noise and hide
the lowest ``num_hidden``, so every clip hides exactly the same count.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from mmcore.contract import Tokens
from mmcore.errors import ConfigError
from mmcore.masking import hide_lowest, uniform_noise

TIE = 1e-3  # per-tubelet noise that only orders tubelets inside the one partly hidden tube


@dataclass
class _Policy:
    ratio: float = 0.9

    def __post_init__(self) -> None:
        if not 0.0 <= self.ratio < 1.0:
            raise ConfigError(f"masking ratio {self.ratio!r} is out of range; accepted: 0 <= ratio < 1 (0 = plain features)")

    def num_hidden(self, num_tokens: int) -> int:
        return int(round(self.ratio * num_tokens))


@dataclass
class TubeMasking(_Policy):
    """The same spatial cells hidden in every frame (VideoMAE, 90%): a hidden patch cannot be
    copied from the next frame, which is what makes video masking hard enough to learn from."""

    ratio: float = 0.9

    def __call__(self, tokens: Tokens, generator: torch.Generator | None = None, scores: Tensor | None = None) -> Tensor:
        gt, gh, gw = tokens.meta["grid"]
        B, device = tokens.batch_size, tokens.values.device
        cell = uniform_noise((B, 1, gh * gw), device, generator).expand(-1, gt, -1)
        score = cell + TIE * uniform_noise((B, gt, gh * gw), device, generator)
        return hide_lowest(score.reshape(B, -1), self.num_hidden(tokens.num_tokens), tokens.valid)


@dataclass
class RandomMasking(_Policy):
    """Independent random tubelets (ST-MAE's 'random'); easier than tube at the same ratio."""

    ratio: float = 0.9

    def __call__(self, tokens: Tokens, generator: torch.Generator | None = None, scores: Tensor | None = None) -> Tensor:
        noise = uniform_noise((tokens.batch_size, tokens.num_tokens), tokens.values.device, generator)
        return hide_lowest(noise, self.num_hidden(tokens.num_tokens), tokens.valid)
