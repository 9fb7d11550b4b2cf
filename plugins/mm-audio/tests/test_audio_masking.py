import pytest
import torch

from mm_audio import FbankTokenizer, FrequencyMasking, RandomMasking, TimeFrequencyMasking, TimeMasking
from mmcore.errors import ConfigError


def tokens(batch=3, frames=64, bins=32, lengths=None):
    tok = FbankTokenizer(num_mel_bins=bins, target_frames=frames, patch_size=[8, 8])
    b = {"fbank": torch.randn(batch, frames, bins)}
    if lengths is not None:
        b["num_frames"] = torch.tensor(lengths)
    return tok.tokenize(b)  # grid (frames/8, bins/8)


def grid(hidden, t):
    return hidden.view(hidden.shape[0], *t.meta["grid"])


def test_time_masking_hides_whole_time_steps():
    t = tokens()  # grid 8 x 4
    hidden = grid(TimeMasking(ratio=0.5)(t, torch.Generator().manual_seed(0)), t)
    assert (hidden.sum((1, 2)) == 16).all()
    assert ((hidden.sum(2) == 0) | (hidden.sum(2) == 4)).all()  # 16 = 4 full columns of 4 bands


def test_frequency_masking_hides_whole_bands_with_one_partial():
    t = tokens()
    hidden = grid(FrequencyMasking(ratio=0.4)(t, torch.Generator().manual_seed(0)), t)  # 13 of 32: 1 band of 8 + 5
    per_band = hidden.sum(1)  # [B, 4]
    assert (hidden.sum((1, 2)) == 13).all()
    for row in per_band.tolist():
        assert sorted(row) == [0, 0, 5, 8]


def test_time_frequency_is_a_union_of_columns_and_rows():
    t = tokens(batch=8)
    hidden = grid(TimeFrequencyMasking(ratio=0.5)(t, torch.Generator().manual_seed(1)), t)
    assert (hidden.sum((1, 2)) == 16).all()
    for h in hidden:
        full_cols, full_rows = h.all(1), h.all(0)
        covered = full_cols[:, None] | full_rows[None, :]
        assert (h & ~covered).sum() <= max(h.shape)  # everything but one partial column or row is a union
        assert full_cols.any() or full_rows.any()


def test_padding_hides_ratio_of_valid_and_never_void():
    t = tokens(lengths=[64, 20, 9])  # valid rows: 8, 3, 2 of 8 (x 4 bands)
    for policy in (RandomMasking(), TimeMasking(), FrequencyMasking(), TimeFrequencyMasking()):
        hidden = policy(t, torch.Generator().manual_seed(0))
        assert not (hidden & ~t.valid).any()
        assert hidden.sum(1).tolist() == [round(0.8 * n) for n in t.valid.sum(1).tolist()]


def test_ratio_checked():
    with pytest.raises(ConfigError, match="ratio 1.0"):
        RandomMasking(ratio=1.0)
