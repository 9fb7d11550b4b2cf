"""The text modality against mmcore's conformance suite (padded batches of different lengths)."""

import pytest

from mm_text.vocab import train_tokenizer
from mmcore.testing import modality_checks

TEXTS = [
    "The cat sat on the mat.",
    "A dog ran across the garden and barked at the postman.",
    "Assignment statements bind names to values and modify attributes of mutable objects.",
]
SAMPLES = [{"text": s, "label": i % 2} for i, s in enumerate(TEXTS)]
TOKENIZER = {"tokenizer_json": train_tokenizer(TEXTS, "wordpiece", 200, True).to_str(), "max_length": 32}


@pytest.mark.parametrize(
    "check", modality_checks("text", SAMPLES, TOKENIZER, styles=("bert", "mae"), round_trip="ids"), ids=lambda c: c.name
)
def test_conformance(check):
    check()
