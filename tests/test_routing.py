"""The routing rule of `mmcore.contract` and attention structure, on the toy modality.

MAE style: every visible ∩ valid token reaches the encoder, no hidden one
does, and spare slots on either side hold void tokens. A plugin's attention
structure is carried through the reorder and the decoder's last rows, and no
mask at all is passed when there is neither void nor structure.
"""

import pytest
import torch
from toy import toy_config

from mmcore import backbone
from mmcore.contract import Tokens
from mmcore.errors import ConfigError
from mmcore.model import MaskedModel, mae_order

N, K = 8, 4  # toy tokens per sample and the ratio-0.5 budget


def holey_tokens(batch_size=3, seed=0):
    """Signals whose void tokens sit in the middle and at the front (missing cells, not only padding)."""
    g = torch.Generator().manual_seed(seed)
    values = torch.randn(batch_size, N, 1, generator=g)
    valid = torch.ones(batch_size, N, dtype=torch.bool)
    valid[0, [1, 4]] = False
    valid[1, [0, 1, 2]] = False
    positions = torch.arange(N)[None, :, None]
    return Tokens(values, positions, valid)


def fewer_than_k_hidden():
    """Each row hides fewer than K valid tokens; rows 0 and 1 have enough void tokens to fill the spare slots."""
    hidden = torch.zeros(3, N, dtype=torch.bool)
    hidden[0, [0, 7]] = True  # 2 hidden, 2 void: 4 visible
    hidden[1, [3]] = True  # 1 hidden, 3 void: 4 visible
    hidden[2, [2, 3, 5, 6]] = True  # exactly K
    return hidden


def test_mae_order_puts_visible_first_void_between_hidden_last():
    tokens, hidden = holey_tokens(), fewer_than_k_hidden()
    order = mae_order(hidden, tokens.valid)
    visible = ~hidden & tokens.valid
    for row in range(3):
        enc, dec = order[row, : N - K], order[row, N - K :]
        assert visible[row, enc].sum() == visible[row].sum()  # every visible token has an encoder slot
        assert not (hidden & tokens.valid)[row, enc].any()  # no hidden token leaks into the encoder
        assert (hidden[row, dec] | ~tokens.valid[row, dec]).all()  # decoder slots: hidden or void filler


@pytest.mark.parametrize("style", ["mae", "bert"])
def test_visible_tokens_all_reach_the_encoder_and_hidden_ones_never(toy_registry, style):
    torch.manual_seed(0)
    model = MaskedModel(toy_config(style)).eval()
    tokens, hidden = holey_tokens(), fewer_than_k_hidden()
    pred, index = model.predict(tokens, hidden, K)
    scored = (hidden & tokens.valid).gather(1, index)
    for row in range(3):
        for col in range(N):
            if not tokens.valid[row, col]:
                continue
            changed = tokens.values.clone()
            changed[row, col] += 5.0
            new, new_index = model.predict(Tokens(changed, tokens.positions, tokens.valid), hidden, K)
            assert torch.equal(index, new_index)
            moved = not torch.allclose(new[row][scored[row]], pred[row][scored[row]], atol=1e-6)
            # a visible token informs the predictions; a hidden token's own value never reaches them
            assert moved == bool(~hidden[row, col]), (row, col, "visible" if ~hidden[row, col] else "hidden")


def test_a_mask_the_model_cannot_route_is_a_config_error(toy_registry):
    model = MaskedModel(toy_config("mae"))
    batch = model.tokenizer.collate([{"signal": torch.ones(N), "label": 0}] * 2)  # no void token
    with pytest.raises(ConfigError, match=r"expected a \[B, N\] = \[2, 8\] bool mask"):
        model(batch, hidden=torch.zeros(2, N))
    too_many = torch.zeros(2, N, dtype=torch.bool)
    too_many[1, :6] = True
    with pytest.raises(ConfigError, match=r"sample\(s\) \[1\] hide \[6\] valid tokens, more than .* \(4 = "):
        model(batch, hidden=too_many)
    too_few = torch.zeros(2, N, dtype=torch.bool)
    too_few[:, :K] = True
    too_few[0, 0] = False
    with pytest.raises(ConfigError, match=r"sample\(s\) \[0\] leave \[5\] valid tokens visible, more than .* 4 slots"):
        model(batch, hidden=too_few)


def test_bert_style_accepts_fewer_hidden_but_not_more(toy_registry):
    model = MaskedModel(toy_config("bert"))
    batch = model.tokenizer.collate([{"signal": torch.ones(N), "label": 0}] * 2)
    few = torch.zeros(2, N, dtype=torch.bool)
    few[:, 0] = True
    out = model(batch, hidden=few)
    assert out.weight.sum() == 2  # one scored slot per sample, the spare slots unscored
    with pytest.raises(ConfigError, match="more than the model predicts"):
        model(batch, hidden=torch.ones(2, N, dtype=torch.bool))


def block_structure(batch_size, boolean=True):
    """Two segments of four tokens that may not attend each other."""
    seg = torch.arange(N) // 4
    allowed = (seg[:, None] == seg[None, :]).expand(batch_size, N, N)
    if boolean:
        return allowed
    return torch.zeros(batch_size, N, N).masked_fill(~allowed, float("-inf"))


@pytest.mark.parametrize("style", ["mae", "bert"])
@pytest.mark.parametrize("boolean", [True, False])
def test_structure_keeps_segments_apart_through_the_reorder(toy_registry, style, boolean):
    torch.manual_seed(0)
    model = MaskedModel(toy_config(style)).eval()
    g = torch.Generator().manual_seed(3)
    values = torch.randn(2, N, 1, generator=g)
    positions = torch.arange(N)[None, :, None]
    hidden = torch.zeros(2, N, dtype=torch.bool)
    hidden[0, [0, 5, 6, 3]] = True  # both segments hidden in a shuffled order
    hidden[1, [4, 1, 2, 7]] = True
    structure = block_structure(2, boolean)
    pred, index = model.predict(Tokens(values, positions, None, structure=structure), hidden, K)
    changed = values.clone()
    changed[:, 4:] += 3.0  # every token of segment 1
    new, _ = model.predict(Tokens(changed, positions, None, structure=structure), hidden, K)
    in_segment0 = index < 4
    assert torch.allclose(pred[in_segment0], new[in_segment0], atol=1e-6)  # segment 0 never saw segment 1
    assert not torch.allclose(pred[~in_segment0], new[~in_segment0], atol=1e-3)
    open_pred, _ = model.predict(Tokens(changed, positions, None), hidden, K)
    assert not torch.allclose(open_pred[in_segment0], pred[in_segment0], atol=1e-3)  # without structure it would


def test_bool_structure_and_its_bias_form_agree_with_void_tokens():
    torch.manual_seed(0)
    net = backbone.Transformer(backbone.TransformerConfig(dim=16, depth=2, heads=2)).eval()
    x = torch.randn(2, N, 16)
    key_valid = torch.ones(2, N, dtype=torch.bool)
    key_valid[0, 3] = False
    a = net(x, key_valid, structure=block_structure(2))
    b = net(x, key_valid, structure=block_structure(2, boolean=False))
    assert torch.allclose(a, b, atol=1e-5)
    assert torch.allclose(
        net(x, key_valid, structure=block_structure(2))[:, -3:], net(x, key_valid, keep_last=3, structure=block_structure(2)), atol=1e-6
    )


def test_no_mask_at_all_without_void_or_structure(toy_registry, monkeypatch):
    seen = []
    sdpa = backbone.F.scaled_dot_product_attention

    def recording(q, k, v, attn_mask=None, **kw):
        seen.append(attn_mask)
        return sdpa(q, k, v, attn_mask=attn_mask, **kw)

    monkeypatch.setattr(backbone.F, "scaled_dot_product_attention", recording)
    model = MaskedModel(toy_config("mae"))
    model(model.tokenizer.collate([{"signal": torch.ones(N), "label": 0}] * 2), generator=torch.Generator().manual_seed(0))
    assert seen and all(m is None for m in seen)  # the FlashAttention path stays open
    seen.clear()
    model(model.tokenizer.collate([{"signal": torch.ones(N), "label": 0}, {"signal": torch.ones(5), "label": 0}]))
    assert all(m is not None and m.dtype == torch.bool for m in seen)


@pytest.mark.parametrize("style", ["mae", "bert"])
def test_the_embedder_is_told_what_is_hidden_in_both_styles(toy_registry, style):
    model = MaskedModel(toy_config(style))
    told = []
    forward = model.embedder.forward
    model.embedder.forward = lambda tokens, hidden=None: told.append(hidden) or forward(tokens, hidden)
    out = model(model.tokenizer.collate([{"signal": torch.ones(N), "label": 0}] * 2), generator=torch.Generator())
    assert len(told) == 1 and torch.equal(told[0], out.hidden)
