"""MaskedModel on the toy modality: both styles, void tokens, masks, the folder."""

import json

import pytest
import torch

import mmcore
from mmcore.errors import DataError, PluginError
from mmcore.model import MaskedModel
from toy import toy_config


def batch_of(model, n=6, variable_length=True):
    from toy import Waves

    return model.tokenizer.collate(Waves(variable_length=variable_length).build(model.tokenizer, "train")[:n])


@pytest.mark.parametrize("style, policy", [("mae", "random"), ("bert", "random"), ("bert", "random_of_valid")])
def test_forward_backward_every_parameter_learns(toy_registry, style, policy):
    torch.manual_seed(0)
    model = MaskedModel(toy_config(style, policy))
    out = model(batch_of(model), generator=torch.Generator().manual_seed(0))
    B, N = out.hidden.shape
    K = model.policy.num_hidden(N)
    assert out.pred.shape == (B, K, 1) and out.token_loss.shape == (B, K) and out.index.shape == (B, K)
    assert torch.isfinite(out.loss)
    out.loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, f"no gradient for {name}"
        assert torch.isfinite(p.grad).all(), f"non-finite gradient for {name}"


def test_loss_is_taken_on_hidden_and_valid_only(toy_registry):
    model = MaskedModel(toy_config("mae"))
    batch = batch_of(model)
    out = model(batch, generator=torch.Generator().manual_seed(1))
    valid = batch["valid"]
    scored = out.hidden & valid
    at_slot = scored.gather(1, out.index)
    assert (at_slot | ~valid.gather(1, out.index)).all()  # a head slot is hidden ∩ valid, or a void filler
    assert torch.equal(at_slot.sum(1), scored.sum(1))  # every hidden ∩ valid token has a slot
    assert torch.equal(out.weight.bool(), at_slot)
    expected = (out.token_loss * out.weight).sum() / out.weight.sum()
    assert torch.allclose(out.loss, expected)


@pytest.mark.parametrize("style", ["mae", "bert"])
def test_void_tokens_never_reach_attention(toy_registry, style):
    model = MaskedModel(toy_config(style)).eval()
    batch = batch_of(model)
    hidden = model.policy(model.tokenizer.tokenize(batch), torch.Generator().manual_seed(2))
    changed = dict(batch, values=batch["values"].masked_fill(~batch["valid"], 123.0))  # garbage in padding
    a, b = model(batch, hidden=hidden), model(changed, hidden=hidden)
    assert torch.allclose(a.pred * a.weight[..., None], b.pred * b.weight[..., None], atol=1e-5)
    assert torch.allclose(a.loss, b.loss, atol=1e-6)


def test_mask_is_deterministic_given_a_generator(toy_registry):
    model = MaskedModel(toy_config("mae"))
    tokens = model.tokenizer.tokenize(batch_of(model))
    m1 = model.policy(tokens, torch.Generator().manual_seed(5))
    m2 = model.policy(tokens, torch.Generator().manual_seed(5))
    m3 = model.policy(tokens, torch.Generator().manual_seed(6))
    assert torch.equal(m1, m2) and not torch.equal(m1, m3)
    assert (m1.sum(1) == model.policy.num_hidden(tokens.num_tokens)).all()


def test_variable_budget_follows_valid_length(toy_registry):
    model = MaskedModel(toy_config("bert", "random_of_valid", ratio=0.5))
    batch = batch_of(model)
    out = model(batch, generator=torch.Generator().manual_seed(0))
    lengths = batch["valid"].sum(1).float()
    assert torch.equal(out.hidden.sum(1), (lengths * 0.5).round().long())
    assert not (out.hidden & ~batch["valid"]).any()


def test_features_ignore_padding(toy_registry):
    model = MaskedModel(toy_config("mae")).eval()
    batch = batch_of(model)
    feats = model.features(batch)
    changed = dict(batch, values=batch["values"].masked_fill(~batch["valid"], -7.0))
    assert feats.shape == (6, 32) and torch.allclose(feats, model.features(changed), atol=1e-5)


def test_folder_round_trip_gives_equal_outputs(toy_registry, tmp_path):
    model = MaskedModel(toy_config("mae")).eval()
    model.save_pretrained(tmp_path / "m")
    assert json.loads((tmp_path / "m" / "config.json").read_text())["modality"] == "signal"
    loaded = mmcore.from_pretrained(str(tmp_path / "m"))
    batch = batch_of(model)
    hidden = model.policy(model.tokenizer.tokenize(batch), torch.Generator().manual_seed(0))
    assert torch.equal(model(batch, hidden=hidden).pred, loaded(batch, hidden=hidden).pred)


def test_tampered_weights_are_a_clear_error(toy_registry, tmp_path):
    MaskedModel(toy_config("mae")).save_pretrained(tmp_path / "m")
    weights = tmp_path / "m" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(DataError, match="weights .*model.safetensors are truncated"):
        mmcore.from_pretrained(str(tmp_path / "m"))


def test_missing_plugin_says_what_to_install(toy_registry, tmp_path):
    config = dict(toy_config("mae"), plugins={"mm-signal": "0.2.0"})
    with pytest.raises(PluginError, match=r"pip install 'mm-signal>=0.2.0'"):
        MaskedModel(config)


def test_keep_last_matches_the_full_transformer():
    from mmcore.backbone import Transformer, TransformerConfig

    torch.manual_seed(0)
    net = Transformer(TransformerConfig(dim=16, depth=2, heads=2)).eval()
    x = torch.randn(3, 10, 16)
    key_valid = torch.rand(3, 10) > 0.2
    assert torch.allclose(net(x, key_valid)[:, -4:], net(x, key_valid, keep_last=4), atol=1e-6)


def test_dropout_acts_in_training_only():
    """BERT's dropout: two training forwards differ, evaluation is the dropout-free network exactly."""
    from mmcore.backbone import Transformer, TransformerConfig

    torch.manual_seed(0)
    net = Transformer(TransformerConfig(dim=16, depth=2, heads=2, dropout=0.3))
    plain = Transformer(TransformerConfig(dim=16, depth=2, heads=2))
    plain.load_state_dict(net.state_dict())  # dropout adds no weights
    x = torch.randn(3, 10, 16)
    assert not torch.allclose(net(x), net(x))
    assert torch.equal(net.eval()(x), plain.eval()(x))


def test_toy_modality_passes_the_conformance_suite(toy_registry):
    from mmcore.testing import modality_checks
    from toy import SignalTokenizer, Waves

    samples = Waves().build(SignalTokenizer(), "train")[:4]
    checks = modality_checks("signal", samples, styles=("mae", "bert"))
    assert len(checks) >= 8
    for check in checks:
        check()


def test_a_missing_plugin_behind_a_part_is_named_with_the_part(toy_registry):
    config = dict(toy_config("mae"), parts={"target": {"name": "hog", "plugin": "mm-hog", "version": "0.3.0"}}, plugins={"mm-hog": "0.3.0"})
    with pytest.raises(PluginError, match=r"needs the plugin mm-hog>=0.3.0 for its target 'hog', .*pip install 'mm-hog>=0.3.0'"):
        MaskedModel(config)


def test_config_records_the_plugin_behind_every_part():
    from mmcore.model import record_sources
    from mmcore.testing import tiny_config

    config = tiny_config("image", "block")
    sources = record_sources(config, "mnist-demo")
    assert set(sources["parts"]) == {"modality", "masking", "target", "dataset"}
    assert sources["parts"]["masking"] == {"name": "block", "plugin": "mm-image", "version": sources["plugins"]["mm-image"]}
    assert sources["parts"]["dataset"]["name"] == "mnist-demo"


# -- model.init: MAE's xavier linears (default) or BERT/ViTMAE's normal(0.02) -----------------


def linears(module):
    return {name: m for name, m in module.named_modules() if isinstance(m, torch.nn.Linear)}


def test_normal_init_redraws_every_linear_but_the_token_embedder(toy_registry):
    torch.manual_seed(0)
    xavier = MaskedModel(toy_config("mae"))
    torch.manual_seed(0)
    normal = MaskedModel({**toy_config("mae"), "init": "normal"})
    assert all(torch.equal(a, b) for a, b in zip(normal.embedder.parameters(), xavier.embedder.parameters(), strict=True))  # left as built
    redrawn = {
        f"{part}.{name}": m
        for part in ("encoder", "decoder", "decoder_embed", "head")
        for name, m in linears(getattr(normal, part)).items()
    }
    assert len(redrawn) >= 2 * 4 + 4 + 1 + 1  # two encoder blocks' qkv/proj/mlp, one decoder block, the bridge, the head
    weights = torch.cat([m.weight.flatten() for m in redrawn.values()])
    assert abs(weights.std().item() - 0.02) < 0.002 and abs(weights.mean().item()) < 0.002
    assert all(m.bias is None or not m.bias.any() for m in redrawn.values())
    xavier_weights = torch.cat([m.weight.flatten() for name, m in linears(xavier).items() if not name.startswith("embedder")])
    assert xavier_weights.std() > 3 * weights.std()  # the default is still MAE's xavier-uniform


def test_normal_init_covers_joint_models_and_survives_the_folder(joint_registry, tmp_path):
    from mmcore.joint import JointModel
    from toy import joint_config

    torch.manual_seed(0)
    model = JointModel({**joint_config("mae"), "init": "normal"})
    heads = torch.cat([m.weight.flatten() for m in linears(model.heads).values()])
    assert abs(heads.std().item() - 0.02) < 0.005
    model.save_pretrained(tmp_path / "m")
    loaded = mmcore.from_pretrained(str(tmp_path / "m"))
    assert loaded.config["init"] == "normal"
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values(), strict=True))


def test_init_is_written_only_when_set_and_unknown_schemes_are_named(toy_registry):
    from omegaconf import OmegaConf

    from mmcore.config import ModelConfig, model_section
    from mmcore.errors import ConfigError

    single = OmegaConf.merge(OmegaConf.structured(ModelConfig), {"modality": "signal"})
    assert "init" not in model_section(single)  # configs written before the option stay as they were
    assert model_section(OmegaConf.merge(single, {"init": "normal"}))["init"] == "normal"
    joint = OmegaConf.merge(OmegaConf.structured(ModelConfig), {"modalities": {"a": {"modality": "signal"}}, "init": "normal"})
    assert model_section(joint)["init"] == "normal"
    with pytest.raises(ConfigError, match="model.init 'xavier' is unknown; accepted: mae, normal"):
        MaskedModel({**toy_config("mae"), "init": "xavier"})
