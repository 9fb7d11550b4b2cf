"""Image masking policies: random (MAE), blockwise (BEiT), coarse cells (SimMIM).

Each scores every patch on the device from the generator's noise and hides
the lowest ``num_hidden`` with the core's `PatchMasking.hide`, so every sample hides exactly
the same count (static shapes) and a seeded generator repeats the mask.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from mmcore import continuous
from mmcore.continuous import PatchMasking
from mmcore.contract import Tokens
from mmcore.errors import ConfigError
from mmcore.masking import uniform_noise

from .tokenizer import nearest_multiple


@dataclass
class RandomMasking(continuous.RandomMasking):
    """Uniformly random patches (MAE): the hardest, cheapest-to-encode pretext at 75%."""

    ratio: float = 0.75


@dataclass
class BlockMasking(PatchMasking):
    """Rectangles of random area and aspect ratio (BEiT), so neighbours can't give a patch away.

    Each sample draws ``num_blocks`` rectangles (area a fraction of the grid in
    [min_area, max_area], aspect in [min_aspect, 1/min_aspect]). Patches are
    taken rectangle by rectangle, each from its centre outwards; if the
    rectangles cover too little, the nearest patches around them follow.
    """

    ratio: float = 0.4
    num_blocks: int = 8
    min_area: float = 0.05
    max_area: float = 0.25
    min_aspect: float = 0.3

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_blocks < 1:
            raise ConfigError(f"block masking num_blocks {self.num_blocks!r} is invalid; accepted: an integer >= 1")
        if not 0.0 < self.min_area <= self.max_area <= 1.0:
            raise ConfigError(
                f"block masking min_area {self.min_area!r} / max_area {self.max_area!r} are invalid; "
                f"accepted: 0 < min_area <= max_area <= 1"
            )
        if not 0.0 < self.min_aspect <= 1.0:
            raise ConfigError(f"block masking min_aspect {self.min_aspect!r} is invalid; accepted: 0 < min_aspect <= 1")

    def __call__(self, tokens: Tokens, generator: torch.Generator | None = None, scores: Tensor | None = None) -> Tensor:
        gh, gw = tokens.meta["grid"]
        B, N, K, device = tokens.batch_size, tokens.num_tokens, self.num_blocks, tokens.values.device
        u = uniform_noise((B, K, 4), device, generator)[..., None, None]  # [B, K, 4, 1, 1]
        area = (self.min_area + (self.max_area - self.min_area) * u[:, :, 0]) * N
        aspect = torch.exp(math.log(self.min_aspect) * (2 * u[:, :, 1] - 1))
        bh = (area * aspect).sqrt().round().clamp(1, gh)  # [B, K, 1, 1] block height in patches
        bw = (area / aspect).sqrt().round().clamp(1, gw)
        top = (u[:, :, 2] * (gh - bh + 1)).floor()
        left = (u[:, :, 3] * (gw - bw + 1)).floor()
        r = torch.arange(gh, device=device, dtype=torch.float32).view(1, 1, gh, 1)
        c = torch.arange(gw, device=device, dtype=torch.float32).view(1, 1, 1, gw)
        # Chebyshev distance of every patch to every block: [B, K, gh, gw], 0 inside
        dist = torch.maximum(
            (top - r).clamp(min=0) + (r - top - bh + 1).clamp(min=0), (left - c).clamp(min=0) + (c - left - bw + 1).clamp(min=0)
        )
        centre = torch.maximum((r - top - (bh - 1) / 2).abs() / bh, (c - left - (bw - 1) / 2).abs() / bw)  # < 0.5 inside
        order = torch.arange(K, device=device, dtype=torch.float32).view(1, K, 1, 1)
        inside = torch.where(dist == 0, order + centre, torch.inf).amin(dim=1)  # [B, gh, gw] in [0, K)
        outside = K + dist.amin(dim=1)  # >= K + 1 off every block: grow around them
        score = torch.where(inside.isfinite(), inside, outside).reshape(B, N)
        return self.hide(tokens, score + 1e-3 * uniform_noise((B, N), device, generator))  # noise only breaks ties


@dataclass
class SimMIMMasking(PatchMasking):
    """Random coarse cells of ``mask_patch_size`` pixels (SimMIM): whole cells hide together."""

    ratio: float = 0.6
    mask_patch_size: int = 32

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.mask_patch_size < 1:
            raise ConfigError(
                f"simmim masking mask_patch_size {self.mask_patch_size!r} is invalid; accepted: a positive multiple of the patch size"
            )

    def __call__(self, tokens: Tokens, generator: torch.Generator | None = None, scores: Tensor | None = None) -> Tensor:
        gh, gw = tokens.meta["grid"]
        p = tokens.meta["patch_size"]
        if self.mask_patch_size % p:
            raise ConfigError(
                f"simmim masking mask_patch_size {self.mask_patch_size} is not a multiple of model.tokenizer.patch_size {p}; "
                f"accepted: multiples of {p} such as {nearest_multiple(self.mask_patch_size, p)}"
            )
        f = self.mask_patch_size // p
        B, device = tokens.batch_size, tokens.values.device
        ch, cw = -(-gh // f), -(-gw // f)  # coarse grid; cells past the border are cropped
        cell_rank = uniform_noise((B, ch * cw), device, generator).argsort(dim=1).argsort(dim=1).view(B, ch, cw)
        cells = cell_rank.repeat_interleave(f, dim=1).repeat_interleave(f, dim=2)[:, :gh, :gw]  # [B, gh, gw]
        # the patch noise only orders patches inside the last, partly hidden cell
        score = cells.reshape(B, -1).to(torch.float32) + 0.5 * uniform_noise((B, gh * gw), device, generator)
        return self.hide(tokens, score)
