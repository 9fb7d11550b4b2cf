import pytest
import torch

from mm_text import TextTokenizer
from mm_text.vocab import train_tokenizer

SENTENCES = [
    "The cat sat on the mat.",
    "A dog ran across the garden and barked at the postman.",
    "Assignment statements bind names to values and modify attributes of mutable objects.",
    "Unbelievably, the unbreakable teapot broke.",
    "Short one.",
]


@pytest.fixture(scope="session")
def sentences():
    return list(SENTENCES)


@pytest.fixture(scope="session")
def tiny_json():
    """A real WordPiece vocabulary learned by `tokenizers` from a few sentences."""
    return train_tokenizer(SENTENCES * 3, "wordpiece", 300, True).to_str()


@pytest.fixture
def tok(tiny_json):
    return TextTokenizer(tokenizer_json=tiny_json, max_length=32)


@pytest.fixture
def gen():
    return lambda seed: torch.Generator().manual_seed(seed)
