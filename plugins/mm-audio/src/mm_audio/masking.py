"""Spectrogram masking (AudioMAE): unstructured, whole time steps, whole mel bands, or both.

Each policy scores every patch on the device from the generator's noise and
hides the lowest-scoring ones. Without padding exactly ``num_hidden`` patches
are hidden per clip (static shapes); with padding, ``round(ratio × valid)``
real patches, never a void one. Structured policies give all patches of a
time step (or band) one score, so whole columns (rows) go first and only the
last one may be partly hidden, which keeps the count exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from mmcore import continuous
from mmcore.continuous import PatchMasking
from mmcore.contract import Tokens
from mmcore.masking import uniform_noise

TIE = 1e-3  # per-patch noise that only orders patches inside the last, partly hidden column/row


@dataclass
class _Policy(PatchMasking):
    ratio: float = 0.8

    def _noise(self, tokens: Tokens, generator, *shape: int) -> Tensor:
        return uniform_noise((tokens.batch_size, *shape), tokens.values.device, generator)


@dataclass
class RandomMasking(continuous.RandomMasking):
    """Unstructured random patches: AudioMAE's best pretraining mask, at 80%."""

    ratio: float = 0.8


@dataclass
class TimeMasking(_Policy):
    """Whole time steps (every mel band of a patch column), as SpecAugment's time masks."""

    ratio: float = 0.8

    def __call__(self, tokens: Tokens, generator: torch.Generator | None = None, scores: Tensor | None = None) -> Tensor:
        gt, gf = tokens.meta["grid"]
        column = self._noise(tokens, generator, gt, 1).expand(-1, -1, gf)
        return self.hide(tokens, (column + TIE * self._noise(tokens, generator, gt, gf)).reshape(tokens.batch_size, -1))


@dataclass
class FrequencyMasking(_Policy):
    """Whole mel bands (every time step of a patch row), as SpecAugment's frequency masks."""

    ratio: float = 0.8

    def __call__(self, tokens: Tokens, generator: torch.Generator | None = None, scores: Tensor | None = None) -> Tensor:
        gt, gf = tokens.meta["grid"]
        row = self._noise(tokens, generator, 1, gf).expand(-1, gt, -1)
        return self.hide(tokens, (row + TIE * self._noise(tokens, generator, gt, gf)).reshape(tokens.batch_size, -1))


@dataclass
class TimeFrequencyMasking(_Policy):
    """Time steps and mel bands together (AudioMAE's 2-D mask): a patch is hidden when its
    column or its row is. Columns and rows draw from one uniform scale, so hiding the
    lowest scores takes the union of the lowest columns and rows."""

    ratio: float = 0.8

    def __call__(self, tokens: Tokens, generator: torch.Generator | None = None, scores: Tensor | None = None) -> Tensor:
        gt, gf = tokens.meta["grid"]
        column = self._noise(tokens, generator, gt, 1)
        row = self._noise(tokens, generator, 1, gf)
        score = torch.minimum(column, row) + TIE * self._noise(tokens, generator, gt, gf)  # [B, gt, gf]
        return self.hide(tokens, score.reshape(tokens.batch_size, -1))
