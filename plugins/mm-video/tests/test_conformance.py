"""The video modality against mmcore's conformance suite, in both backbone styles."""

import pytest
import torch

from mmcore.testing import modality_checks

g = torch.Generator().manual_seed(0)
SAMPLES = [{"video": torch.randint(0, 256, (3, 4, 16, 24), generator=g, dtype=torch.uint8), "label": i % 2} for i in range(3)]
TOKENIZER = {"num_frames": 4, "image_size": [16, 24], "tubelet_size": [2, 8, 8], "channels": 3}


@pytest.mark.parametrize(
    "check", modality_checks("video", SAMPLES, TOKENIZER, styles=("mae", "bert"), round_trip="clips"), ids=lambda c: c.name
)
def test_conformance(check):
    check()
