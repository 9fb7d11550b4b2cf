"""Frame strips: for each clip, rows original | masked | reconstruction, frames left to right."""

from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image
from torch import Tensor

GAP = 4  # white pixels between frames and between rows
CLIP_GAP = 12  # between clips
MIN_HEIGHT = 64  # small frames are upscaled (nearest) to at least this


def _to_uint8(batch: Tensor) -> np.ndarray:
    """[B, C, T, H, W] in [0, 1] → [B, T, H, W, 3] uint8."""
    x = torch.nan_to_num(batch.detach().to("cpu", torch.float32), nan=0.5).clamp(0, 1)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1, -1)
    return (x * 255).round().to(torch.uint8).permute(0, 2, 3, 4, 1).numpy()


def frame_strip(original: Tensor, masked: Tensor, reconstruction: Tensor, max_clips: int = 4, max_frames: int = 16) -> Image.Image:
    clips = [_to_uint8(t[:max_clips, :, :max_frames]) for t in (original, masked, reconstruction)]
    B, T, H, W, _ = clips[0].shape
    s = max(1, math.ceil(MIN_HEIGHT / H))
    h, w = H * s, W * s
    block = 3 * h + 2 * GAP
    canvas = np.full((B * block + (B - 1) * CLIP_GAP, T * w + (T - 1) * GAP, 3), 255, dtype=np.uint8)
    for b in range(B):
        for r, rows in enumerate(clips):
            top = b * (block + CLIP_GAP) + r * (h + GAP)
            for t in range(T):
                canvas[top : top + h, t * (w + GAP) : t * (w + GAP) + w] = rows[b, t].repeat(s, axis=0).repeat(s, axis=1)
    return Image.fromarray(canvas)
