"""Video masking: tube (VideoMAE) and random tubelets.

Both score every tubelet on the device from the generator's noise and hide
the lowest ``num_hidden``, so every clip hides exactly the same count.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from mmcore import continuous
from mmcore.continuous import PatchMasking
from mmcore.contract import Tokens
from mmcore.masking import uniform_noise

TIE = 1e-3  # per-tubelet noise that only orders tubelets inside the one partly hidden tube


@dataclass
class TubeMasking(PatchMasking):
    """The same spatial cells hidden in every frame (VideoMAE, 90%): a hidden patch cannot be
    copied from the next frame, which is what makes video masking hard enough to learn from."""

    ratio: float = 0.9

    def __call__(self, tokens: Tokens, generator: torch.Generator | None = None, scores: Tensor | None = None) -> Tensor:
        gt, gh, gw = tokens.meta["grid"]
        B, device = tokens.batch_size, tokens.values.device
        cell = uniform_noise((B, 1, gh * gw), device, generator).expand(-1, gt, -1)
        score = cell + TIE * uniform_noise((B, gt, gh * gw), device, generator)
        return self.hide(tokens, score.reshape(B, -1))


@dataclass
class RandomMasking(continuous.RandomMasking):
    """Independent random tubelets (ST-MAE's 'random'); easier than tube at the same ratio."""

    ratio: float = 0.9
