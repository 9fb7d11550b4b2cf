"""mmcore.continuous: sin-cos positions, patch target, regression head, embedder, random masking, folders."""

from types import SimpleNamespace

import pytest
import torch

from mmcore.continuous import PatchEmbedder, PatchTarget, RandomMasking, RegressionHead, keep_readable, list_class_folder, sincos
from mmcore.contract import Tokens
from mmcore.errors import ConfigError, DataError


def grid(*sizes: int) -> torch.Tensor:
    """[1, N, A] integer coordinates of every cell of a grid."""
    axes = torch.meshgrid(*(torch.arange(s) for s in sizes), indexing="ij")
    return torch.stack([a.flatten() for a in axes], dim=-1)[None]


@pytest.mark.parametrize("sizes", [(50,), (7, 9), (3, 4, 5)], ids=["1d", "2d", "3d"])
def test_sincos_shape_and_every_position_unique(sizes):
    pos = grid(*sizes)
    emb = sincos(pos, 48)
    n = pos.shape[1]
    assert emb.shape == (1, n, 48) and emb.dtype == torch.float32
    assert torch.unique(emb[0], dim=0).shape[0] == n
    assert sincos(pos[0], 48).shape == (n, 48)  # no batch axis works too


def test_sincos_leftover_features_are_zero_and_tiny_dims_do_not_fail():
    emb = sincos(grid(3, 4, 5), 20)  # 20 // 6 = 3 frequencies per axis: 18 used, 2 left over
    assert torch.equal(emb[..., 18:], torch.zeros_like(emb[..., 18:]))
    assert torch.equal(sincos(grid(2, 2, 2), 4), torch.zeros(1, 8, 4))


def patches(B=2, N=6, D=12, valid=None):
    return Tokens(values=torch.randn(B, N, D) * 3 + 5, positions=grid(2, 3).expand(B, -1, -1), valid=valid)


def test_target_norm_round_trip():
    tokens = patches()
    target = PatchTarget(norm_pix=True)
    normed = target(tokens)
    assert normed.dtype == torch.float32
    torch.testing.assert_close(normed.mean(-1), torch.zeros(2, 6), atol=1e-5, rtol=0)
    index = torch.tensor([[0, 4], [5, 1]])
    picked = normed.gather(1, index[..., None].expand(-1, -1, 12))
    want = tokens.values.gather(1, index[..., None].expand(-1, -1, 12))
    torch.testing.assert_close(target.to_values(picked, tokens, index), want)
    plain = PatchTarget(norm_pix=False)
    assert torch.equal(plain(tokens), tokens.values) and torch.equal(plain.to_values(picked, tokens, index), picked)


def test_head_loss_is_float32_per_token():
    tok = SimpleNamespace(patch_dim=12)
    head = RegressionHead(tok, PatchTarget(), dim=16)
    pred = head(torch.randn(2, 5, 16))
    assert pred.shape == (2, 5, 12)
    loss = head.loss(pred.to(torch.bfloat16), torch.randn(2, 5, 12))  # bf16 predictions (autocast) still score in float32
    assert loss.shape == (2, 5) and loss.dtype == torch.float32 and (loss >= 0).all()


def test_embedder_styles_and_axis_check():
    tok = SimpleNamespace(patch_dim=12)
    mae = PatchEmbedder(tok, dim=30, decoder_dim=10)  # no axes: leftover features are zero
    assert not hasattr(mae, "mask_token") and mae(patches()).shape == (2, 6, 30)
    assert mae.decoder_positions(patches()).shape == (2, 6, 10)
    bert = PatchEmbedder(tok, dim=32, decoder_dim=None)
    hidden = torch.zeros(2, 6, dtype=torch.bool)
    hidden[:, 0] = True
    x = bert(patches(), hidden)
    torch.testing.assert_close(x[0, 0] - x[1, 0], torch.zeros(32))  # a hidden patch shows only the mask vector + position

    class TwoAxes(PatchEmbedder):
        axes = 2

    with pytest.raises(ConfigError, match="model.encoder.dim 30 is not divisible by 4"):
        TwoAxes(tok, dim=30, decoder_dim=None)


def test_random_masking_counts():
    policy = RandomMasking(ratio=0.5)
    hidden = policy(patches(B=3, N=6), torch.Generator().manual_seed(0))
    assert hidden.sum(1).tolist() == [3, 3, 3]
    valid = torch.tensor([[True] * 6, [True] * 4 + [False] * 2])
    hidden = policy(patches(N=6, valid=valid), torch.Generator().manual_seed(0))
    assert hidden.sum(1).tolist() == [3, 2] and not (hidden & ~valid).any()
    with pytest.raises(ConfigError, match="ratio"):
        RandomMasking(ratio=1.0)


def test_class_folder_listing(tmp_path):
    for rel in ("b/x.wav", "a/y.WAV", "a/.hidden/z.wav", "top.wav", "a/skip.txt"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    files, labels, classes = list_class_folder(str(tmp_path), ["wav"], "audio", "./clips")
    assert [f.relative_to(tmp_path).as_posix() for f in files] == ["a/y.WAV", "b/x.wav", "top.wav"]
    assert labels == [0, 1, -1] and classes == ["a", "b"]
    with pytest.raises(ConfigError, match="e.g. data.dataset.path=./clips"):
        list_class_folder("???", ["wav"], "audio", "./clips")
    with pytest.raises(DataError, match="holds no video files"):
        list_class_folder(str(tmp_path), ["mp4"], "video", "./videos")

    def probe(f):
        if f.name == "x.wav":
            raise DataError("bad header")

    with pytest.warns(UserWarning, match="skipped 1 of 3 audio files"):
        kept, kept_labels = keep_readable(files, labels, probe, "audio", str(tmp_path), "wav")
    assert kept == [files[0], files[2]] and kept_labels == [0, -1]
