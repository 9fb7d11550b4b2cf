import pytest
import torch

from mm_image import PatchEmbedder, PixelHead, PixelTarget
from mmcore.errors import ConfigError


def test_norm_pix_statistics_and_inverse(tokens_of):
    _, tokens = tokens_of(4, 6, patch=4, channels=3, batch=2)
    target = PixelTarget(norm_pix=True)
    t = target(tokens)
    assert t.shape == tokens.values.shape and t.dtype == torch.float32
    assert torch.allclose(t.mean(-1), torch.zeros(2, 24), atol=1e-5)
    assert torch.allclose(t.var(-1), torch.ones(2, 24), atol=1e-3)
    index = torch.tensor([[0, 5, 23], [7, 1, 2]])
    picked = t.gather(1, index[..., None].expand(-1, -1, t.shape[-1]))
    back = target.to_values(picked, tokens, index)
    assert torch.allclose(back, tokens.values.gather(1, index[..., None].expand(-1, -1, 48)), atol=1e-5)


def test_plain_pixels_target(tokens_of):
    tok, tokens = tokens_of(2, 2, patch=4, channels=1)
    target = PixelTarget(norm_pix=False)
    assert target.dim(tok) == 16
    assert torch.equal(target(tokens), tokens.values)
    index = torch.zeros(tokens.batch_size, 1, dtype=torch.long)
    assert torch.equal(target.to_values(tokens.values[:, :1], tokens, index), tokens.values[:, :1])


def test_head_loss_is_float32_mse_per_token(tokens_of):
    tok, _ = tokens_of(2, 2, patch=4, channels=3)
    head = PixelHead(tok, PixelTarget(), dim=32)
    pred = head(torch.randn(2, 5, 32)).to(torch.bfloat16)
    assert pred.shape == (2, 5, 48)
    target = torch.randn(2, 5, 48)
    loss = head.loss(pred, target)
    assert loss.shape == (2, 5) and loss.dtype == torch.float32
    assert torch.allclose(loss, ((pred.float() - target) ** 2).mean(-1))


def test_embedder_shapes_and_mask_token(tokens_of):
    tok, tokens = tokens_of(4, 6, patch=4, channels=1, batch=2)
    mae = PatchEmbedder(tok, dim=32, decoder_dim=16)
    assert mae(tokens).shape == (2, 24, 32)
    assert mae.decoder_positions(tokens).shape == (1, 24, 16)
    assert not hasattr(mae, "mask_token")  # MAE style: no parameter that would get no gradient under DDP
    emb = PatchEmbedder(tok, dim=32, decoder_dim=None)  # BERT/SimMIM style
    x = emb(tokens)
    hidden = torch.zeros(2, 24, dtype=torch.bool)
    hidden[0, 3] = True
    y = emb(tokens, hidden)
    assert torch.allclose(y[~hidden], x[~hidden])
    y.sum().backward()
    # a hidden token is the mask vector at its position, whatever its pixels were
    tokens.values[0, 3] += 1.0
    assert torch.allclose(emb(tokens, hidden)[0, 3], y[0, 3])
    assert emb.mask_token.grad is not None and emb.mask_token.grad.abs().sum() > 0


def test_embedder_positions_are_distinct_for_any_grid(tokens_of):
    tok, tokens = tokens_of(3, 5, patch=4)
    emb = PatchEmbedder(tok, dim=64, decoder_dim=64)
    pos = emb.decoder_positions(tokens)[0]  # [15, 64]
    assert torch.cdist(pos, pos).add(torch.eye(15) * 1e3).min() > 0.1
    _, bigger = tokens_of(7, 9, patch=4)
    assert torch.allclose(emb.decoder_positions(bigger)[0, 0], pos[0])  # same place, same embedding
    with pytest.raises(ConfigError, match="not divisible by 4"):
        PatchEmbedder(tok, dim=30, decoder_dim=16)
