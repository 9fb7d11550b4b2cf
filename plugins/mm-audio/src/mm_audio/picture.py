"""Spectrogram picture: one row per clip, columns original | masked | reconstruction.

Time runs left to right and frequency bottom to top, as people read
spectrograms; all three panels of a row share the original's colour scale,
so a reconstruction that is too quiet or too loud shows as such.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torch import Tensor

GAP = 4
MIN_HEIGHT = 128  # few mel bins (or short crops) are upscaled to at least this many pixels
MIN_WIDTH = 128
# a dark-to-bright perceptual ramp (black, purple, red, orange, pale yellow)
RAMP = np.array([[0, 0, 4], [80, 18, 123], [182, 54, 121], [251, 136, 97], [252, 253, 191]], dtype=np.float32)


def colorize(x: np.ndarray) -> np.ndarray:
    """[...] values in [0, 1] → [..., 3] uint8 along the ramp."""
    pos = np.clip(x, 0.0, 1.0) * (len(RAMP) - 1)
    lo = np.minimum(pos.astype(np.int64), len(RAMP) - 2)
    frac = (pos - lo)[..., None]
    return (RAMP[lo] * (1 - frac) + RAMP[lo + 1] * frac).round().astype(np.uint8)


def spectrogram_grid(original: Tensor, masked: Tensor, reconstruction: Tensor, max_rows: int = 6) -> Image.Image:
    """Three [B, T, F] log-mel batches → one RGB image."""
    panels = [torch.nan_to_num(t[:max_rows].detach().to("cpu", torch.float32)).numpy() for t in (original, masked, reconstruction)]
    rows, T, F = panels[0].shape
    s, sw = max(1, -(-MIN_HEIGHT // F)), max(1, -(-MIN_WIDTH // T))
    h, w = F * s, T * sw
    canvas = np.full((rows * h + (rows - 1) * GAP, 3 * w + 2 * GAP, 3), 255, dtype=np.uint8)
    for i in range(rows):
        lo, hi = np.percentile(panels[0][i], [1, 99])
        for j, panel in enumerate(panels):
            img = colorize((panel[i] - lo) / max(hi - lo, 1e-6)).transpose(1, 0, 2)[::-1]  # [F, T, 3], low bins at the bottom
            canvas[i * (h + GAP) : i * (h + GAP) + h, j * (w + GAP) : j * (w + GAP) + w] = img.repeat(s, axis=0).repeat(sw, axis=1)
    return Image.fromarray(canvas)
