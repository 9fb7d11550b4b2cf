"""Table masking: ReMasker's re-masking of observed cells, and plain random cells.

`RemaskMasking` (ReMasker, Du et al. 2024): naturally missing cells are void
— never shown to the encoder, never scored — and a ``ratio`` of each row's
*observed* cells is hidden and scored. To keep the hidden count per row fixed
(static shapes), each row hides exactly ``num_hidden(N) = round(ratio * N)``
slots: first ``round(ratio * observed)`` observed cells (scored), then void
cells as filler (``round(ratio * N) - round(ratio * observed) <= missing``, so
there are always enough). Void cells left over sit in visible slots, masked as
attention keys. The encoder thus sees ``(1 - ratio)`` of the observed cells
and nothing else, as in ReMasker.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from mmcore.contract import Tokens
from mmcore.errors import ConfigError
from mmcore.masking import hide_lowest, uniform_noise


def round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


@dataclass
class _Policy:
    ratio: float = 0.5

    def __post_init__(self) -> None:
        if not 0.0 <= self.ratio < 1.0:
            raise ConfigError(f"masking ratio {self.ratio!r} is out of range; accepted: 0 <= ratio < 1 (0 = plain features)")

    def num_hidden(self, num_tokens: int) -> int:
        return round_half_up(self.ratio * num_tokens)


@dataclass
class RemaskMasking(_Policy):
    """Missing cells void, plus ``ratio`` of the observed cells hidden and scored (ReMasker).

    ``min_ratio`` (BERT style only): each row hides its own share, drawn uniformly in
    [min_ratio, ratio], so the model also learns to fill a cell from nearly all the others,
    which is what imputing a table with few missing cells asks of it."""

    ratio: float = 0.5
    min_ratio: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.min_ratio is not None:
            if not 0.0 <= self.min_ratio <= self.ratio:
                raise ConfigError(
                    f"model.masking.min_ratio {self.min_ratio!r} is out of range; accepted: 0 <= min_ratio <= ratio ({self.ratio})"
                )
            self.fixed_budget = False  # the count varies per row: BERT style only (see mmcore.contract)

    def __call__(self, tokens: Tokens, generator: torch.Generator | None = None, scores: Tensor | None = None) -> Tensor:
        B, N = tokens.batch_size, tokens.num_tokens
        if self.min_ratio is not None:
            return self.per_row(tokens, generator)
        noise = uniform_noise((B, N), tokens.values.device, generator)  # [B, N] in [0, 1)
        K = self.num_hidden(N)
        if tokens.valid is None:
            return hide_lowest(noise, K)
        valid = tokens.valid
        # 0: re-masked observed (scored), 1: void filler, 2: observed kept visible
        tier = torch.where(valid, torch.where(observed_share(noise, valid, self.ratio), 0.0, 2.0), 1.0)
        return hide_lowest(tier + 0.5 * noise, K)

    def per_row(self, tokens: Tokens, generator: torch.Generator | None) -> Tensor:
        """``round(r * observed)`` observed cells of each row hidden, r ~ U(min_ratio, ratio) per row."""
        B, N = tokens.batch_size, tokens.num_tokens
        u = uniform_noise((B, 1 + N), tokens.values.device, generator)
        ratio = self.min_ratio + (self.ratio - self.min_ratio) * u[:, :1]  # [B, 1]
        valid = tokens.valid if tokens.valid is not None else torch.ones(B, N, dtype=torch.bool, device=u.device)
        return observed_share(u[:, 1:], valid, ratio)


def observed_share(noise: Tensor, valid: Tensor, ratio: float | Tensor) -> Tensor:
    """[B, N] True for ``round(ratio × observed)`` of each row's observed cells, the lowest ``noise`` first
    (``ratio``: one number, or [B, 1] for a share per row)."""
    rank = noise.masked_fill(~valid, 2.0).argsort(dim=1).argsort(dim=1)  # observed cells first, random order
    budget = (valid.sum(dim=1, keepdim=True).to(torch.float32) * ratio + 0.5).floor().long()  # [B, 1]
    return (rank < budget) & valid


@dataclass
class RandomMasking(_Policy):
    """``ratio`` of all cells, observed ones first (a plain baseline to ReMasker)."""

    ratio: float = 0.5

    def __call__(self, tokens: Tokens, generator: torch.Generator | None = None, scores: Tensor | None = None) -> Tensor:
        noise = uniform_noise((tokens.batch_size, tokens.num_tokens), tokens.values.device, generator)
        return hide_lowest(noise, self.num_hidden(tokens.num_tokens), tokens.valid)
