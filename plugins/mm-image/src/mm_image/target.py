"""Pixel targets, optionally normalised per patch (MAE's norm_pix_loss)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from mmcore.contract import Tokens

EPS = 1e-6


def _patch_stats(values: Tensor) -> tuple[Tensor, Tensor]:
    """Per-patch mean and std over all of a patch's values, in float32: [B, N, 1] each."""
    v = values.to(torch.float32)
    return v.mean(dim=-1, keepdim=True), (v.var(dim=-1, keepdim=True) + EPS).sqrt()


@dataclass
class PixelTarget:
    """Predict each hidden patch's pixels; ``norm_pix`` scores its local contrast
    instead of absolute intensity, which MAE found gives better features."""

    norm_pix: bool = True

    def dim(self, tokenizer) -> int:
        return tokenizer.patch_size**2 * tokenizer.channels

    def __call__(self, tokens: Tokens) -> Tensor:
        values = tokens.values.to(torch.float32)  # [B, N, D]
        if not self.norm_pix:
            return values
        mean, std = _patch_stats(values)
        return (values - mean) / std

    def to_values(self, pred: Tensor, tokens: Tokens, index: Tensor) -> Tensor:
        """Predictions [B, K, D] at token indices ``index`` [B, K] → token values [B, K, D]."""
        pred = pred.to(torch.float32)
        if not self.norm_pix:
            return pred
        original = tokens.values.gather(1, index[..., None].expand(-1, -1, tokens.values.shape[-1]))  # [B, K, D]
        mean, std = _patch_stats(original)
        return pred * std + mean
