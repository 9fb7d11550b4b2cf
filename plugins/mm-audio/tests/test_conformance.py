"""The audio modality against mmcore's conformance suite, in both backbone styles.

Clips of different lengths on purpose: two are padded, so void tokens are exercised.
"""

import pytest
import torch

from mmcore.testing import modality_checks

g = torch.Generator().manual_seed(0)
SAMPLES = [{"wave": torch.randn(n, generator=g) * 0.1, "label": i % 2} for i, n in enumerate([5000, 2500, 1200])]
TOKENIZER = {"sample_rate": 16000, "num_mel_bins": 32, "target_frames": 32, "patch_size": [8, 8]}


@pytest.mark.parametrize(
    "check", modality_checks("audio", SAMPLES, TOKENIZER, styles=("mae", "bert"), round_trip="fbank"), ids=lambda c: c.name
)
def test_conformance(check):
    check()
