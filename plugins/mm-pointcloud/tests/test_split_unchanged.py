"""PointFolder's train/test split is the one it drew inline before mmcore.splits (a numpy permutation, seed 0)."""

from types import SimpleNamespace

import numpy as np
import pytest

from mm_pointcloud.data import PointFolder


def old_split(n, fraction, split):  # mm_pointcloud/data.py PointFolder.build, before mmcore.splits
    order = np.random.default_rng(0).permutation(n)
    num_test = int(round(fraction * n))
    return sorted(order[:num_test] if split == "test" else order[num_test:])


@pytest.mark.parametrize("count, fraction", [(7, 0.3), (40, 0.25), (101, 0.1)])
def test_point_folder_split_is_unchanged(tmp_path, count, fraction):
    for i in range(count):  # listing and splitting read no points: empty files will do
        (tmp_path / f"{i:03}.ply").touch()
    files = sorted(tmp_path.glob("*.ply"))
    for split in ("train", "test"):
        built = PointFolder(path=str(tmp_path), test_fraction=fraction).build(SimpleNamespace(num_points=64), split)
        assert built.files == [files[i] for i in old_split(count, fraction, split)]
