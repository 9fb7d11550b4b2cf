"""JointModel: two modalities (toy signal + toy word) on one backbone, both styles."""

import pytest
import torch

import mmcore
from mmcore import plugins
from mmcore.errors import ConfigError, PluginError
from mmcore.joint import JointModel, JointOutput
from toy import joint_config, paired_samples


def make(style="mae", **kw):
    torch.manual_seed(0)
    return JointModel(joint_config(style, **kw))


@pytest.mark.parametrize("style", ["mae", "bert"])
def test_every_parameter_learns_and_each_stream_has_its_budget(joint_registry, style):
    model = make(style)
    batch = model.collate(paired_samples(6))
    out = model(batch, generator=torch.Generator().manual_seed(0))
    assert isinstance(out, JointOutput) and out.hidden_whole is None
    signal, word = out.outputs["signal"], out.outputs["word"]
    N = batch["signal"]["values"].shape[1]
    assert signal.pred.shape == (6, model.streams["signal"].policy.num_hidden(N), 1)
    assert word.pred.shape == (6, 1, 16) and word.index.shape == (6, 1)  # round(0.5 × 2) slots, vocabulary logits
    assert torch.isfinite(out.loss)
    out.loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name  # DDP needs a gradient for every one


@pytest.mark.parametrize("style", ["mae", "bert"])
def test_a_wholly_hidden_modality_is_predicted_from_the_other_alone(joint_registry, style):
    model = make(style).eval()
    batch = model.collate(paired_samples(6))
    out = model(batch, hide_whole="word")
    word = out.outputs["word"]
    assert out.hidden_whole == "word" and word.pred.shape[:2] == (6, 2) and word.weight.sum() == 12
    assert not out.outputs["signal"].hidden.any()  # the other modality is shown entirely
    other_words = dict(batch, word={"ids": torch.full_like(batch["word"]["ids"], 5)})
    assert torch.allclose(model(other_words, hide_whole="word").outputs["word"].pred, word.pred, atol=1e-6)
    louder = dict(batch, signal=dict(batch["signal"], values=batch["signal"]["values"] * 3))
    assert not torch.allclose(model(louder, hide_whole="word").outputs["word"].pred, word.pred, atol=1e-4)


def test_the_mixture_hides_one_whole_modality_per_batch_reproducibly(joint_registry):
    model = make(hide_one_prob=1.0)
    batch = model.collate(paired_samples(4))
    chosen = [model(batch, generator=torch.Generator().manual_seed(s)).hidden_whole for s in range(12)]
    assert set(chosen) == {"signal", "word"}
    again = [model(batch, generator=torch.Generator().manual_seed(s)).hidden_whole for s in range(12)]
    assert chosen == again  # drawn from the generator's seed: a resumed run draws the same
    assert make(hide_one_prob=0.0)(batch, generator=torch.Generator().manual_seed(0)).hidden_whole is None


def test_hide_weight_sets_the_odds_of_the_stream_a_batch_hides_whole(joint_registry):
    config = joint_config(hide_one_prob=1.0)
    config["modalities"]["word"]["hide_weight"] = 4.0
    model = JointModel(config)
    chosen = [model.scenario(torch.Generator().manual_seed(s))[0] for s in range(400)]
    assert 0.72 < chosen.count("word") / 400 < 0.88  # 4 in 5
    config["modalities"]["signal"]["hide_weight"] = 0.0
    assert {JointModel(config).scenario(torch.Generator().manual_seed(s))[0] for s in range(50)} == {"word"}
    config["modalities"]["signal"]["hide_weight"] = -1.0
    with pytest.raises(ConfigError, match="model.modalities.signal.hide_weight"):
        JointModel(config)


@pytest.mark.parametrize("style", ["mae", "bert"])
def test_a_sample_missing_a_modality_has_it_void_and_unscored(joint_registry, style):
    model = make(style)
    samples = paired_samples(5)
    samples[1] = {"signal": samples[1]["signal"], "word": None}
    samples[3] = {"signal": None, "word": samples[3]["word"]}
    batch = model.collate(samples)
    assert batch["word"]["ids"].shape[0] == 4 and batch["present"]["word"] == [True, False, True, True, True]
    out = model(batch, generator=torch.Generator().manual_seed(0))
    assert out.outputs["word"].weight[1].sum() == 0 and out.outputs["signal"].weight[3].sum() == 0
    assert out.outputs["word"].tokens.valid[1].sum() == 0
    assert torch.isfinite(out.loss)
    out.loss.backward()


def test_a_mask_passed_in_is_checked_per_modality(joint_registry):
    model = make("mae")
    batch = model.collate(paired_samples(3, variable_length=False))
    with pytest.raises(ConfigError, match=r"modality 'word': hidden: sample\(s\) \[0, 1, 2\] hide \[2, 2, 2\] valid tokens"):
        model(batch, hidden={"word": torch.ones(3, 2, dtype=torch.bool)})
    with pytest.raises(ConfigError, match=r"hidden: unknown modality \['image'\]; this batch holds signal, word"):
        model(batch, hidden={"image": torch.ones(3, 2, dtype=torch.bool)})
    fixed = {"word": torch.tensor([[True, False]] * 3)}
    a, b = model(batch, hidden=fixed), model(batch, hidden=fixed)
    assert torch.equal(a.outputs["word"].hidden, fixed["word"]) and a.outputs["word"].weight.sum() == 3
    assert torch.equal(a.outputs["word"].index, b.outputs["word"].index)


def test_recipe_errors_name_the_modality(joint_registry):
    config = joint_config()
    config["modalities"]["sonar"] = {}
    with pytest.raises(PluginError, match=r"modality 'sonar' \(stream 'sonar'\): pip install mm-sonar"):
        JointModel(config)
    config = joint_config()
    config["modalities"]["word"]["role"] = "output"
    with pytest.raises(ConfigError, match=r"model.modalities.word.role 'output' is unknown; accepted: both, input, target"):
        JointModel(config)
    config = joint_config()
    for entry in config["modalities"].values():
        entry["role"] = "target"
    with pytest.raises(ConfigError, match="every modality has role 'target'"):
        JointModel(config)
    with pytest.raises(ConfigError, match="hide_whole 'image' is not a modality of this model"):
        make()(make().collate(paired_samples(2)), hide_whole="image")


def test_roles_fix_what_is_seen_and_what_is_predicted(joint_registry):
    config = joint_config()
    config["modalities"]["signal"]["role"] = "input"
    config["modalities"]["word"]["role"] = "target"
    model = JointModel(config)
    out = model(model.collate(paired_samples(4)), generator=torch.Generator().manual_seed(0))
    assert not out.outputs["signal"].hidden.any() and out.outputs["signal"].pred.shape[1] == 0
    assert out.outputs["word"].hidden.all() and out.outputs["word"].weight.sum() == 8


def test_the_folder_round_trip_restores_a_joint_model(joint_registry, tmp_path):
    model = make("mae").eval()
    model.save_pretrained(tmp_path / "m")
    loaded = mmcore.from_pretrained(str(tmp_path / "m"))
    assert isinstance(loaded, JointModel) and list(loaded.streams) == ["signal", "word"]
    batch = model.collate(paired_samples(4))
    a = model(batch, generator=torch.Generator().manual_seed(3))
    b = loaded(batch, generator=torch.Generator().manual_seed(3))
    for name in a.outputs:
        assert torch.equal(a.outputs[name].pred, b.outputs[name].pred), name
    assert torch.allclose(model.features(batch), loaded.features(batch))


def test_missing_plugins_are_all_named_when_loading(joint_registry, tmp_path):
    make().save_pretrained(tmp_path / "m")
    plugins.reset_registry()
    registry = plugins.get_registry()  # entry points only: neither toy modality is installed
    assert "signal" not in registry.items["modalities"]
    with pytest.raises(
        PluginError,
        match=r"modality 'signal' \(stream 'signal'\): pip install mm-signal; "
        r"modality 'word' \(stream 'word'\): pip install mm-word",
    ):
        mmcore.from_pretrained(str(tmp_path / "m"))


def test_a_budget_larger_than_the_token_count_names_the_modality(joint_registry):
    model = make()
    model.streams["signal"].policy.num_hidden = lambda n: n + 3
    with pytest.raises(ConfigError, match=r"modality 'signal': its masking policy hides 19 of 16 tokens"):
        model(model.collate(paired_samples(3, variable_length=False)), generator=torch.Generator().manual_seed(0))


def test_every_missing_plugin_of_a_folder_is_named_in_one_error(joint_registry):
    config = dict(
        joint_config(),
        parts={
            "signal.modality": {"name": "signal", "plugin": "mm-signal", "version": "1.0"},
            "word.target": {"name": "ids", "plugin": "mm-word", "version": "2.0"},
        },
        plugins={"mm-signal": "1.0", "mm-word": "2.0"},
    )
    with pytest.raises(
        PluginError,
        match=r"mm-signal>=1.0 for its signal.modality 'signal'.*pip install 'mm-signal>=1.0'"
        r".*mm-word>=2.0 for its word.target 'ids'.*pip install 'mm-word>=2.0'",
    ):
        JointModel(config)


def test_the_mixture_also_leaves_modalities_out(joint_registry):
    config = joint_config(hide_one_prob=1.0)
    config["modalities"]["third"] = dict(config["modalities"]["signal"], modality="signal")  # two streams of one plugin
    config["input_keep_prob"] = 0.0
    torch.manual_seed(0)
    model = JointModel(config)
    samples = [dict(s, third=s["signal"]) for s in paired_samples(4)]
    batch = model.collate(samples)
    seen = set()
    for seed in range(10):
        out = model(batch, generator=torch.Generator().manual_seed(seed))
        whole, left_out = out.hidden_whole, out.left_out
        assert whole not in left_out and len(left_out) == 1  # keep probability 0: all but one other left out
        for name in left_out:
            assert out.outputs[name].weight.sum() == 0  # left out: hidden, never scored
        seen.add((whole, *sorted(left_out)))
    assert len(seen) > 2


def test_a_stream_keeps_its_modality_embedding_when_another_is_absent(joint_registry):
    """Predicting word from signal must not depend on whether the batch also carried a third stream's key."""
    config = joint_config()
    config["modalities"] = {"extra": dict(config["modalities"]["signal"], modality="signal"), **config["modalities"]}
    torch.manual_seed(0)
    model = JointModel(config).eval()
    samples = paired_samples(3)
    with_extra = model.collate([dict(s, extra=s["signal"]) for s in samples])
    without = model.collate(samples)  # no sample holds "extra": the stream is absent from the batch
    a = model(with_extra, hide_whole="word", hidden=None).outputs["word"].pred
    b = model(without, hide_whole="word").outputs["word"].pred
    assert a.shape == b.shape
    # the word's embedding row is its own in both batches: only the extra stream's *content* differs
    emb = model.modality_embed.detach().clone()
    model.modality_embed.data[model.row["extra"]] += 100.0  # if "word" or "signal" used extra's row, outputs would move
    assert torch.allclose(model(without, hide_whole="word").outputs["word"].pred, b, atol=1e-5)
    model.modality_embed.data.copy_(emb)
