"""Reconstruction grid: one row per sample, columns original | masked | reconstruction."""

from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image
from torch import Tensor

GAP = 4  # white pixels between cells
MIN_HEIGHT = 112  # small images (MNIST's 28 px) are upscaled to at least this


def _to_rgb_uint8(batch: Tensor) -> np.ndarray:
    """[B, C, H, W] in [0, 1] → [B, H, W, 3] uint8; NaN (an unfilled hidden patch) shows as gray."""
    x = torch.nan_to_num(batch.detach().to("cpu", torch.float32), nan=0.5).clamp(0, 1)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    return (x * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def reconstruction_grid(original: Tensor, masked: Tensor, reconstruction: Tensor, max_rows: int = 8) -> Image.Image:
    columns = [_to_rgb_uint8(t[:max_rows]) for t in (original, masked, reconstruction)]
    rows, H, W, _ = columns[0].shape
    s = max(1, math.ceil(MIN_HEIGHT / H))  # nearest-neighbour upscale keeps patch edges sharp
    h, w = H * s, W * s
    canvas = np.full((rows * h + (rows - 1) * GAP, 3 * w + 2 * GAP, 3), 255, dtype=np.uint8)
    for j, column in enumerate(columns):
        big = column.repeat(s, axis=1).repeat(s, axis=2)  # [rows, h, w, 3]
        for i in range(rows):
            canvas[i * (h + GAP) : i * (h + GAP) + h, j * (w + GAP) : j * (w + GAP) + w] = big[i]
    return Image.fromarray(canvas)
