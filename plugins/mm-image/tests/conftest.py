import torch
import pytest

from mm_image import ImageTokenizer


@pytest.fixture
def tokens_of():
    """Tokens of random images for a grid of ``gh`` x ``gw`` patches."""

    def make(gh=8, gw=8, patch=4, channels=1, batch=4):
        tok = ImageTokenizer(image_size=[gh * patch, gw * patch], patch_size=patch, channels=channels)
        return tok, tok.tokenize({"images": torch.rand(batch, channels, gh * patch, gw * patch)})

    return make
