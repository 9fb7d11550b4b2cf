import pytest
import torch

from mmcore.errors import ConfigError
from mmcore.model import MaskedModel
from mmcore.testing import tiny_config
from mm_tabular import RandomMasking, RemaskMasking


def _tokens(rows: int = 64, columns: int = 10, missing: float = 0.3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    valid = torch.rand(rows, columns, generator=g) >= missing
    from mmcore.contract import Tokens

    pos = torch.arange(columns, dtype=torch.float32).view(1, columns, 1)
    return Tokens(torch.randn(rows, columns, 1, generator=g), pos, valid)


def test_remask_hides_a_fixed_count_rescoring_only_a_ratio_of_observed_cells():
    tokens = _tokens()
    policy = RemaskMasking(ratio=0.5)
    hidden = policy(tokens, torch.Generator().manual_seed(1))
    K = policy.num_hidden(tokens.num_tokens)
    assert (hidden.sum(1) == K).all()  # static shapes
    observed = tokens.valid.sum(1).float()
    scored = (hidden & tokens.valid).sum(1).float()
    assert torch.equal(scored, (observed * 0.5 + 0.5).floor())  # ReMasker: a ratio of the *observed* cells
    seen = ~hidden & tokens.valid  # what the encoder attends to
    assert torch.equal(seen.sum(1).float(), observed - scored)


def test_remask_with_min_ratio_draws_each_rows_share_of_its_observed_cells():
    tokens = _tokens(rows=2000, columns=20, missing=0.1)
    policy = RemaskMasking(ratio=0.5, min_ratio=0.1)
    hidden = policy(tokens, torch.Generator().manual_seed(1))
    assert not (hidden & ~tokens.valid).any() and not policy.fixed_budget  # observed cells only, a count per row
    share = hidden.sum(1).float() / tokens.valid.sum(1).float()
    assert share.min() >= 0.05 and share.max() <= 0.55 + 1e-6  # round(r * observed), r in [0.1, 0.5]
    assert abs(share.mean().item() - 0.3) < 0.02 and share.std() > 0.08  # spread over the range, not one ratio
    assert torch.equal(hidden, policy(tokens, torch.Generator().manual_seed(1)))  # seeded
    with pytest.raises(ConfigError, match=r"min_ratio 0.6 is out of range; accepted: 0 <= min_ratio <= ratio \(0.5\)"):
        RemaskMasking(ratio=0.5, min_ratio=0.6)


def test_remask_with_min_ratio_trains_in_bert_style_and_is_refused_in_mae_style(tokenizer_options, samples):
    config = tiny_config("tabular", "remask", style="bert", tokenizer=tokenizer_options)
    config["masking"] = {"name": "remask", "ratio": 0.5, "min_ratio": 0.2}
    torch.manual_seed(0)
    model = MaskedModel(config)
    out = model(model.tokenizer.collate(samples), generator=torch.Generator().manual_seed(0))
    out.loss.backward()
    assert torch.isfinite(out.loss) and model.embedder.mask_token.grad is not None
    with pytest.raises(ConfigError, match="fixed"):
        MaskedModel(dict(config, style="mae"))


def test_random_masking_hides_observed_cells_first():
    tokens = _tokens(missing=0.7)
    hidden = RandomMasking(ratio=0.5)(tokens, torch.Generator().manual_seed(0))
    K = RandomMasking(ratio=0.5).num_hidden(tokens.num_tokens)
    expected = torch.minimum(tokens.valid.sum(1), torch.tensor(K))
    assert torch.equal((hidden & tokens.valid).sum(1), expected)


def test_void_cells_change_neither_the_loss_nor_the_predictions(tokenizer_options, samples):
    """Missing cells are never attention keys and never scored: their stored values are irrelevant."""
    torch.manual_seed(0)
    model = MaskedModel(tiny_config("tabular", "remask", tokenizer=tokenizer_options)).eval()
    batch = model.tokenizer.collate(samples)
    hidden = model.policy(model.tokenizer.tokenize(batch), torch.Generator().manual_seed(0))
    a = model(batch, hidden=hidden)
    poked = dict(batch, values=torch.where(batch["valid"], batch["values"], torch.full_like(batch["values"], 9.0)))
    b = model(poked, hidden=hidden)
    assert torch.allclose(a.loss, b.loss) and torch.allclose(a.pred * a.weight[..., None], b.pred * b.weight[..., None])
    assert a.weight.sum() == (hidden & batch["valid"]).sum()  # scored = re-masked observed cells only


def test_head_scores_numeric_by_mse_and_categorical_by_cross_entropy(tokenizer_options):
    model = MaskedModel(tiny_config("tabular", "remask", tokenizer=tokenizer_options))
    head = model.head
    pred = torch.zeros(1, 2, head.proj.out_features)
    pred[0, 0, 0] = 1.5  # numeric column 0 predicts 1.5, truth 0.5
    target = torch.tensor([[[0.5, 0.0], [2.0, 1.0]]])  # column 1 (3 categories), truth category 2
    loss = head.loss(pred, target)
    assert loss["numeric"][0, 0].item() == pytest_approx(1.0) and loss["categorical"][0, 0] == 0
    assert loss["categorical"][0, 1].item() == pytest_approx(torch.log(torch.tensor(3.0)).item())  # its own 3 categories
    assert loss["numeric"][0, 1] == 0


def test_loss_parts_are_weighed_by_the_recipe(tokenizer_options, samples):
    from mmcore.executor import check_loss_weights

    torch.manual_seed(0)
    model = MaskedModel(tiny_config("tabular", "remask", tokenizer=tokenizer_options))
    assert model.loss_parts() == ["tabular/numeric", "tabular/categorical"]
    out = model(model.tokenizer.collate(samples), generator=torch.Generator().manual_seed(0))
    both, count = out.loss_terms()
    numeric, _ = out.loss_terms({"tabular/categorical": 0.0})
    categorical, _ = out.loss_terms({"tabular/numeric": 0.0})
    assert numeric > 0 and categorical > 0 and torch.allclose(both, numeric + categorical)
    assert torch.allclose(out.loss * count, both)  # the parts add up to the per-token loss
    check_loss_weights({"tabular/numeric": 2.0}, model.loss_parts())
    with pytest.raises(ConfigError, match=r"unknown loss part\(s\) \['tabular/numbers'\]; .*tabular/numeric"):
        check_loss_weights({"tabular/numbers": 2.0}, model.loss_parts())


def pytest_approx(x):
    import pytest

    return pytest.approx(x, rel=1e-5)
