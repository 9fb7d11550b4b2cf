import pytest
import torch

from mm_image import ImageTokenizer
from mmcore.errors import ConfigError


@pytest.mark.parametrize("channels,patch,size", [(1, 4, (32, 48)), (3, 16, (32, 48)), (3, 4, (28, 28)), (1, 16, (16, 16))])
def test_round_trip(channels, patch, size):
    mean, std = ([0.5] * channels, [0.25] * channels) if channels == 3 else (None, None)
    tok = ImageTokenizer(image_size=list(size), patch_size=patch, channels=channels, mean=mean, std=std)
    images = torch.rand(2, channels, *size)
    tokens = tok.tokenize({"images": images})
    h, w = size[0] // patch, size[1] // patch
    assert tokens.values.shape == (2, h * w, patch * patch * channels)
    assert tokens.positions.shape == (1, h * w, 2) and tokens.valid is None
    assert tokens.meta["grid"] == (h, w)
    assert torch.allclose(tok.detokenize(tokens.values, tokens), images, atol=1e-6)


def test_patch_content_and_positions():
    tok = ImageTokenizer(image_size=[8, 12], patch_size=4, channels=3, mean=[0.1, 0.2, 0.3], std=[0.5, 0.5, 2.0])
    images = torch.rand(1, 3, 8, 12)
    tokens = tok.tokenize({"images": images})
    # token 4 is grid row 1, col 1: pixels [4:8, 4:8], (row, col, channel) order, normalised
    expected = (images[0, :, 4:8, 4:8] - torch.tensor([0.1, 0.2, 0.3]).view(3, 1, 1)) / torch.tensor([0.5, 0.5, 2.0]).view(3, 1, 1)
    assert torch.allclose(tokens.values[0, 4], expected.permute(1, 2, 0).reshape(-1))
    assert tokens.positions[0, 4].tolist() == [1.0, 1.0]
    assert tokens.positions[0, 2].tolist() == [0.0, 2.0]


def test_any_size_at_tokenize_time():
    tok = ImageTokenizer(image_size=[32, 32], patch_size=16, channels=1)
    tokens = tok.tokenize({"images": torch.rand(1, 1, 64, 16)})  # not the configured size
    assert tokens.meta["grid"] == (4, 1)
    with pytest.raises(ValueError, match=r"\[1, 1, 30, 32\]"):
        tok.tokenize({"images": torch.rand(1, 1, 30, 32)})
    with pytest.raises(ValueError, match="B, 1, H, W"):
        tok.tokenize({"images": torch.rand(1, 3, 32, 32)})


def test_config_errors_name_field_value_and_accepted():
    with pytest.raises(
        ConfigError,
        match=r"image_size \[30, 30\] is not divisible by model.tokenizer.patch_size 16; accepted: multiples of 16 such as \[32, 32\]",
    ):
        ImageTokenizer(image_size=[30, 30])
    with pytest.raises(ConfigError, match="channels 2.*1 .* or 3"):
        ImageTokenizer(channels=2)
    with pytest.raises(ConfigError, match=r"mean \[0.5\] has 1 value; accepted: one per channel"):
        ImageTokenizer(channels=3, mean=[0.5])
    with pytest.raises(ConfigError, match="std"):
        ImageTokenizer(channels=1, std=[0.0])
    with pytest.raises(ConfigError, match="image_size"):
        ImageTokenizer(image_size=[32])


def test_collate():
    tok = ImageTokenizer(image_size=[8, 8], patch_size=4, channels=1)
    batch = tok.collate([{"image": torch.rand(1, 8, 8), "label": 3}, {"image": torch.rand(1, 8, 8)}])
    assert batch["images"].shape == (2, 1, 8, 8) and batch["images"].dtype == torch.float32
    assert batch["labels"].tolist() == [3, -1] and batch["labels"].dtype == torch.long
