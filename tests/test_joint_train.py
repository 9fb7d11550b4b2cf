"""A joint (two-modality) recipe through the same executor: recipe schema, paired data, exact resume."""

import json

import pytest
import torch

import mmcore
from mmcore.config import load_recipe
from mmcore.errors import ConfigError
from mmcore.joint import JointModel
from mmcore.model import MaskedModel
from mmcore.executor import train
from toy import WordPlugin, train_recipe

RECIPE = """
name: joint
model:
  modalities:
    signal:
      masking: {name: random_of_valid, ratio: 0.5}
    word:
      masking: {name: bert, ratio: 0.5}
  hide_one_prob: 0.5
  encoder: {dim: 32, depth: 2, heads: 4}
  decoder: {dim: 16, depth: 1, heads: 2}
data:
  dataset:
    name: paired
    modalities:
      signal: {name: waves, num_train: 48}
      word: {name: labels}
  batch_size: 8
train:
  steps: 8
  warmup_steps: 2
  base_lr: 0.01
  log_every: 1
  checkpoint_every: 3
  trackers: []
"""


@pytest.fixture
def recipe(tmp_path, toy_registry):
    toy_registry.add_plugin(WordPlugin(), "word")
    path = tmp_path / "joint.yaml"
    path.write_text(RECIPE)
    return path


run = train_recipe


def test_a_joint_recipe_is_typed_per_modality(recipe):
    cfg = load_recipe(recipe, ["model.modalities.word.masking.ratio=0.25"])
    assert cfg.model.modalities.word.masking.ratio == 0.25 and cfg.model.modalities.word.masking.mask_prob == 0.8
    assert cfg.model.modalities.signal.tokenizer.max_length == 16 and cfg.model.modalities.signal.role == "both"
    assert cfg.data.dataset.modalities.signal.variable_length is True
    with pytest.raises(ConfigError, match=r"unknown key 'model.modalities.word.masking.ratoi'; did you mean ratio"):
        load_recipe(recipe, ["model.modalities.word.masking.ratoi=0.3"])
    with pytest.raises(ConfigError, match=r"model.modalities.sonar.modality: unknown modality 'sonar'.*pip install mm-sonar"):
        load_recipe(recipe, ["model.modalities.sonar.role=input"])
    with pytest.raises(ConfigError, match=r"data.dataset.modalities.word.name: unknown dataset 'imagenet' for modality 'word'"):
        load_recipe(recipe, ["data.dataset.modalities.word.name=imagenet"])


def test_two_modalities_with_the_same_name_are_refused(recipe, tmp_path):
    twice = tmp_path / "twice.yaml"
    twice.write_text(
        RECIPE.replace(
            "    word:\n      masking: {name: bert, ratio: 0.5}\n",
            "    word:\n      masking: {name: bert, ratio: 0.5}\n    word:\n      role: input\n",
        )
    )
    with pytest.raises(ConfigError, match="duplicate key"):
        load_recipe(twice)


def test_a_one_entry_joint_recipe_is_the_single_modality_model(recipe, tmp_path):
    one = tmp_path / "one.yaml"
    one.write_text(RECIPE.replace("    word:\n      masking: {name: bert, ratio: 0.5}\n", "").replace("      word: {name: labels}\n", ""))
    cfg = load_recipe(one)
    assert cfg.model.modality == "signal" and cfg.data.dataset.name == "waves" and not cfg.model.modalities
    folder = train(load_recipe(one, [f"output_dir={tmp_path / 'one'}", "train.steps=2"]))
    assert isinstance(mmcore.from_pretrained(str(folder)), MaskedModel)


def test_a_joint_run_learns_writes_its_folder_and_resumes_exactly(recipe, tmp_path):
    full = run(recipe, tmp_path / "full")
    assert sorted(full) == list(range(1, 9)) and all(torch.isfinite(torch.tensor(v)) for v in full.values())
    folder = tmp_path / "full" / "model"
    config = json.loads((folder / "config.json").read_text())
    assert set(config["modalities"]) == {"signal", "word"} and config["hide_one_prob"] == 0.5
    assert config["parts"]["word.dataset"]["name"] == "labels" and config["parts"]["signal.masking"]["name"] == "random_of_valid"
    assert "signal + word" in (folder / "README.md").read_text()
    assert isinstance(mmcore.from_pretrained(str(folder)), JointModel)
    run(recipe, tmp_path / "cut", kill_at=5)
    resumed = run(recipe, tmp_path / "cut", resume=True)
    assert sorted(resumed) == [4, 5, 6, 7, 8]
    for step in resumed:
        assert resumed[step] == pytest.approx(full[step], rel=1e-6, abs=1e-7), step


def test_without_the_mixture_the_loss_falls(recipe, tmp_path):
    losses = run(recipe, tmp_path / "plain", overrides=["model.hide_one_prob=0", "train.steps=20", "train.base_lr=0.3"])
    assert sum(losses[s] for s in (18, 19, 20)) < 0.8 * sum(losses[s] for s in (1, 2, 3))


def test_loss_weights_name_the_streams(recipe, tmp_path):
    with pytest.raises(ConfigError, match=r"unknown loss part\(s\) \['image'\]; this model's parts: signal, word"):
        run(recipe, tmp_path / "w", overrides=["train.loss_weights.image=2"])
    assert run(recipe, tmp_path / "w2", overrides=["train.loss_weights.word=0.5", "train.steps=2"])
