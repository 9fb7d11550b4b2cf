"""The protein modality against mmcore's conformance suite (padded batches of different lengths)."""

import pytest

from mmcore.testing import modality_checks

SAMPLES = [
    {"sequence": s, "label": i % 2}
    for i, s in enumerate(["MKTAYIAKQRQISFVKSHFSRQ", "GSHMLEDPV", "MDKKYSIGLDIGTNSVGWAVITDEYKVPSKKFKVLGNTDRHSIKKNLIGALLFDS"])
]


@pytest.mark.parametrize(
    "check", modality_checks("protein", SAMPLES, {"max_length": 64}, styles=("bert", "mae"), round_trip="ids"), ids=lambda c: c.name
)
def test_conformance(check):
    check()
