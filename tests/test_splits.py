"""`mmcore.splits` gives, for each RNG convention, exactly the split the plugins computed inline before it existed
(benchmarks, trained models and resumed runs depend on which items are test items)."""

import random

import numpy as np
import pytest
import torch

from mmcore.errors import ConfigError
from mmcore.splits import check_test_fraction, permutation, split_indices


def old_numpy(n, fraction, split):  # mm-audio _split; mm-video, mm-pointcloud build
    order = np.random.default_rng(0).permutation(n)
    num_test = int(round(fraction * n))
    return sorted((order[:num_test] if split == "test" else order[num_test:]).tolist())


def old_torch(n, fraction, split):  # mm-image build, mm-text split_documents, mm-protein split_records
    order = torch.randperm(n, generator=torch.Generator().manual_seed(0)).tolist()
    num_test = int(round(fraction * n))
    return sorted(order[:num_test] if split == "test" else order[num_test:])


def old_python(n, fraction, split):  # mm-tabular split_rows
    order = list(range(n))
    random.Random(0).shuffle(order)
    num_test = int(round(fraction * n))
    return sorted(order[:num_test] if split == "test" else order[num_test:])


OLD = {"numpy": old_numpy, "torch": old_torch, "python": old_python}
SIZES = [*range(130), 150, 178, 333, 442, 569, 1000, 2100, 3000]  # small folders, the demo tables, proteome, clips
FRACTIONS = [0.0, 0.05, 0.1, 0.2, 0.25, 0.3, 0.5, 0.9]


@pytest.mark.parametrize("rng", OLD)
def test_each_convention_gives_the_split_it_gave_before(rng):
    for n in SIZES:
        for fraction in FRACTIONS:
            for split in ("train", "test"):
                assert split_indices(n, fraction, split, rng=rng) == OLD[rng](n, fraction, split), (n, fraction, split)


def test_splits_partition_the_items_and_numpy_is_the_default():
    train, test = split_indices(50, 0.2, "train"), split_indices(50, 0.2, "test")
    assert len(test) == 10 and sorted(train + test) == list(range(50))
    assert split_indices(50, 0.2, "test") == old_numpy(50, 0.2, "test")
    assert permutation(5, "python") == [2, 1, 0, 4, 3]  # random.Random(0).shuffle, pinned


def test_unknown_split_rng_or_fraction_is_refused():
    with pytest.raises(ConfigError, match="dataset split 'validation' is unknown"):
        split_indices(10, 0.1, "validation")
    with pytest.raises(ValueError, match="unknown rng 'jax'; accepted: numpy, torch, python"):
        split_indices(10, 0.1, "train", rng="jax")
    check_test_fraction(0.0)
    with pytest.raises(ConfigError, match=r"test_fraction 1.0 is out of range; accepted: 0 <= test_fraction < 1"):
        check_test_fraction(1.0)
