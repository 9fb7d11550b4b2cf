"""The point-cloud modality against mmcore's conformance suite, in both backbone styles."""

import numpy as np
import pytest

from mmcore.testing import modality_checks

from mm_pointcloud import make_shape

RNG = np.random.default_rng(0)
SAMPLES = [{"points": make_shape(name, 80, RNG, 0.01), "label": i} for i, name in enumerate(("sphere", "cube", "torus"))]
TOKENIZER = {"num_points": 64, "num_groups": 8, "group_size": 8}  # lossy (FPS + kNN groups): no round_trip key


@pytest.mark.parametrize("check", modality_checks("pointcloud", SAMPLES, TOKENIZER, styles=("mae", "bert")), ids=lambda c: c.name)
def test_conformance(check):
    check()
