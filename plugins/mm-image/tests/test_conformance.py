"""The image modality against mmcore's conformance suite, in both backbone styles."""

import pytest
import torch

from mmcore.testing import modality_checks

SAMPLES = [{"image": torch.rand(3, 32, 48), "label": i % 2} for i in range(3)]  # non-square on purpose
TOKENIZER = {"image_size": [32, 48], "patch_size": 8, "channels": 3}


@pytest.mark.parametrize(
    "check", modality_checks("image", SAMPLES, TOKENIZER, styles=("mae", "bert"), round_trip="images"), ids=lambda c: c.name
)
def test_conformance(check):
    check()
