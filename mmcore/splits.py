"""Train/test splits by a fixed-seed permutation, the same on every run, rank and machine.

A dataset of ``n`` items is permuted with seed 0; the first
``round(test_fraction * n)`` of the permutation are the test split, the rest
train, each returned in ascending order (so a split reads its files in folder
order). The plugins drew that permutation from three generators before this
module existed, and which items land in the test split depends on it:
``rng`` keeps each one's choice, so benchmarks and trained models stay
comparable. New datasets take the default.

* ``"numpy"`` (default): ``np.random.default_rng(seed).permutation(n)``: audio, video, point cloud
* ``"torch"``: ``torch.randperm(n, generator=torch.Generator().manual_seed(seed))``: image, text, protein
* ``"python"``: ``random.Random(seed).shuffle(list(range(n)))``: tabular
"""

from __future__ import annotations

import random

import numpy as np
import torch

from mmcore.contract import check_split
from mmcore.errors import ConfigError

RNGS = ("numpy", "torch", "python")


def check_test_fraction(test_fraction: float) -> None:
    """For a dataset's ``__post_init__``, so a bad value stops the run before any data is read."""
    if not 0.0 <= test_fraction < 1.0:
        raise ConfigError(f"data.dataset.test_fraction {test_fraction!r} is out of range; accepted: 0 <= test_fraction < 1")


def permutation(n: int, rng: str = "numpy", seed: int = 0) -> list[int]:
    """``range(n)`` shuffled by ``rng`` seeded with ``seed``."""
    if rng == "numpy":
        return np.random.default_rng(seed).permutation(n).tolist()
    if rng == "torch":
        return torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    if rng == "python":
        order = list(range(n))
        random.Random(seed).shuffle(order)
        return order
    raise ValueError(f"unknown rng {rng!r}; accepted: {', '.join(RNGS)}")


def split_indices(n: int, test_fraction: float, split: str, rng: str = "numpy", seed: int = 0) -> list[int]:
    """The sorted indices of ``split`` ("train" or "test") among ``n`` items."""
    check_split(split)
    order = permutation(n, rng, seed)
    num_test = int(round(test_fraction * n))
    return sorted(order[:num_test] if split == "test" else order[num_test:])
