import numpy as np
import pytest
import torch

from mm_video import RandomMasking, TubeMasking, VideoTokenizer
from mmcore.errors import ConfigError, DataError


def test_tubelets_roundtrip_and_positions():
    tok = VideoTokenizer(num_frames=4, image_size=[16, 24], tubelet_size=[2, 8, 8], channels=3, mean=[0.5, 0.4, 0.3], std=[0.2, 0.25, 0.3])
    clips = torch.randint(0, 256, (2, 3, 4, 16, 24), dtype=torch.uint8)
    batch = tok.collate([{"video": c, "label": 1} for c in clips])
    assert batch["clips"].dtype == torch.uint8 and batch["labels"].tolist() == [1, 1]
    tokens = tok.tokenize(batch)
    assert tokens.values.shape == (2, 2 * 2 * 3, 2 * 8 * 8 * 3) and tokens.meta["grid"] == (2, 2, 3)
    assert tokens.valid is None
    assert tokens.positions[0, 7].tolist() == [1.0, 0.0, 1.0]  # t, row, col of token 7 on a 2x2x3 grid
    # token 7 holds frames 2-3, rows 0-7, cols 8-15, channel-last and normalised
    x = clips[0].float() / 255
    expected = (x[:, 2:4, 0:8, 8:16] - torch.tensor([0.5, 0.4, 0.3]).view(3, 1, 1, 1)) / torch.tensor([0.2, 0.25, 0.3]).view(3, 1, 1, 1)
    assert torch.allclose(tokens.values[0, 7], expected.permute(1, 2, 3, 0).reshape(-1), atol=1e-6)
    assert torch.allclose(tok.detokenize(tokens.values, tokens), clips.float() / 255, atol=1e-6)
    floats = tok.collate([{"video": clips[0]}, {"video": clips[1].float() / 255}])
    assert floats["clips"].dtype == torch.float32 and torch.allclose(tok.tokenize(floats).values, tokens.values, atol=1e-5)


def test_tokenizer_rejects_bad_settings_and_batches():
    with pytest.raises(ConfigError, match=r"num_frames 5 .* not divisible by tubelet_size \[2, 16, 16\]"):
        VideoTokenizer(num_frames=5)
    with pytest.raises(ConfigError, match="tubelet_size"):
        VideoTokenizer(tubelet_size=[16, 16])
    tok = VideoTokenizer(num_frames=4, image_size=[16, 16], tubelet_size=[2, 8, 8], channels=1)
    with pytest.raises(DataError, match="different shapes"):
        tok.collate([{"video": torch.zeros(1, 4, 16, 16)}, {"video": torch.zeros(1, 2, 16, 16)}])


def tokens(batch=4):
    tok = VideoTokenizer(num_frames=8, image_size=[32, 32], tubelet_size=[2, 8, 8], channels=1)
    return tok.tokenize({"clips": torch.rand(batch, 1, 8, 32, 32)})  # grid 4 x 4 x 4


def test_tube_masking_hides_the_same_cells_in_every_frame():
    t = tokens()
    hidden = TubeMasking()(t, torch.Generator().manual_seed(0)).view(4, 4, 16)  # [B, gt, cells]
    assert (hidden.sum((1, 2)) == round(0.9 * 64)).all()  # 58 = 14 full tubes + 2 of a 15th
    per_cell = hidden.sum(1)  # [B, 16]
    for row in per_cell.tolist():
        assert sorted(row) == [0, 2] + [4] * 14
    assert not torch.equal(hidden[0, 0], hidden[1, 0])  # each clip draws its own cells


def test_random_masking_differs_across_frames():
    t = tokens()
    hidden = RandomMasking(ratio=0.5)(t, torch.Generator().manual_seed(0)).view(4, 4, 16)
    assert (hidden.sum((1, 2)) == 32).all()
    assert any(not torch.equal(h[0], h[1]) for h in hidden)
    with pytest.raises(ConfigError, match="ratio -0.1"):
        TubeMasking(ratio=-0.1)


def test_frame_strip_layout():
    from mm_video import frame_strip

    clips = torch.zeros(2, 1, 4, 16, 16)
    clips[:, :, 2] = 1.0  # frame 2 is white
    image = frame_strip(clips, clips, clips)
    assert image.size == (4 * 64 + 3 * 4, 2 * (3 * 64 + 2 * 4) + 12)  # frames upscaled to 64 px
    pixels = torch.tensor(np.array(image)).float()
    assert pixels[32, 2 * 68 + 32].min() == 255 and pixels[32, 32].max() == 0
