import math

import numpy as np
import pytest
import torch

from mm_audio import FbankTokenizer
from mmcore.errors import ConfigError, DataError


def tone(seconds, freq=1000.0, rate=16000):
    t = torch.arange(int(seconds * rate)) / rate
    return 0.5 * torch.sin(2 * math.pi * freq * t)


def test_fbank_is_kaldi_128_bins_10ms_hop_and_finds_the_tone():
    tok = FbankTokenizer(target_frames=128)
    spec = tok.features(tone(1.0, freq=1000.0))
    assert spec.shape == (98, 128)  # (16000 - 400) // 160 + 1 frames, 128 mel bins
    low = tok.features(tone(1.0, freq=300.0))
    assert spec.mean(0).argmax() > low.mean(0).argmax() + 10  # a higher tone lands in a higher mel bin


def test_collate_crops_pads_and_marks_void_patches():
    tok = FbankTokenizer(num_mel_bins=32, target_frames=64, patch_size=[16, 8])
    long, short = tone(1.0), tone(0.3)  # 98 frames (cropped to 64), 28 frames (padded)
    batch = tok.collate([{"wave": long, "label": 3}, {"wave": short, "label": 5}])
    assert batch["fbank"].shape == (2, 64, 32) and batch["labels"].tolist() == [3, 5]
    assert batch["num_frames"].tolist() == [64, 28]
    assert torch.equal(batch["fbank"][0], tok.features(long)[:64])
    assert (batch["fbank"][1, 28:] == 0).all()
    tokens = tok.tokenize(batch)
    assert tokens.values.shape == (2, 4 * 4, 16 * 8) and tokens.meta["grid"] == (4, 4)
    # patch rows start at frames 0, 16, 32, 48: the short clip (28 frames) has two real rows
    assert tokens.valid[0].all() and tokens.valid[1].tolist() == [True] * 8 + [False] * 8
    assert tokens.positions[0, 5].tolist() == [1.0, 1.0]
    assert torch.equal(tok.detokenize(tokens.values, tokens), batch["fbank"])
    full = tok.collate([{"wave": long}, {"wave": tone(0.9)}])
    assert "num_frames" not in full and tok.tokenize(full).valid is None  # no padding: no mask at all


def test_fit_normalises_and_detokenize_undoes_it():
    tok = FbankTokenizer(num_mel_bins=32, target_frames=32, patch_size=[8, 8])
    data = [{"wave": tone(s, f), "label": 0} for s, f in ((0.4, 200.0), (0.4, 800.0), (0.2, 2000.0))]
    tok.fit(data)
    specs = torch.cat([tok.features(d["wave"]) for d in data])
    assert tok.mean == pytest.approx(float(specs.mean()), rel=1e-5) and tok.std == pytest.approx(float(specs.std()), rel=1e-5)
    batch = tok.collate(data)
    tokens = tok.tokenize(batch)
    assert abs(float(tokens.values[tokens.valid].mean())) < 0.5  # normalised
    assert torch.allclose(tok.detokenize(tokens.values, tokens), batch["fbank"], atol=1e-4)
    assert (tokens.values[~tokens.valid] == 0).all()  # padding sits at the mean


def test_bad_settings_and_inputs():
    with pytest.raises(ConfigError, match=r"target_frames 100 .* not divisible by patch_size \[16, 16\]"):
        FbankTokenizer(target_frames=100)
    with pytest.raises(ConfigError, match="patch_size"):
        FbankTokenizer(patch_size=[16])
    with pytest.raises(ConfigError, match="frame_shift_ms"):
        FbankTokenizer(frame_shift_ms=30.0)
    tok = FbankTokenizer(num_mel_bins=32, target_frames=32, patch_size=[8, 8])
    with pytest.raises(DataError, match=r"200 samples is shorter than one 25 ms analysis window \(400 samples"):
        tok.collate([{"wave": torch.zeros(200)}])
    with pytest.raises(DataError, match=r"\[10, 64\] does not fit.*\[frames >= 1, 32\]"):
        tok.collate([{"fbank": torch.zeros(10, 64)}])


def test_picture_puts_low_frequencies_at_the_bottom():
    from mm_audio import spectrogram_grid

    spec = torch.zeros(2, 64, 32)
    spec[:, :, 0] = 10.0  # energy in the lowest mel bin only
    image = spectrogram_grid(spec, spec, spec)
    assert image.size == (3 * 128 + 2 * 4, 2 * 128 + 4)  # 64 frames x2 wide, 32 bins x4 high, per panel
    pixels = torch.tensor(np.array(image)).float()
    assert pixels[127, 10].sum() > pixels[0, 10].sum() + 200  # bottom row of the first panel is the bright one
