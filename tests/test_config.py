"""Recipes: typed parsing, overrides, and errors that name the key."""

import pytest

from mmcore.config import load_recipe, model_dict
from mmcore.errors import ConfigError

RECIPE = """
name: toy
model:
  modality: signal
  masking: {name: random, ratio: 0.5}
  encoder: {dim: 32, depth: 2, heads: 4}
data:
  dataset: {name: waves, num_train: 32}
  batch_size: 8
train:
  steps: 4
"""


@pytest.fixture
def recipe(tmp_path, toy_registry):
    path = tmp_path / "toy.yaml"
    path.write_text(RECIPE)
    return path


def test_typed_recipe_with_overrides(recipe):
    cfg = load_recipe(recipe, ["train.base_lr=3e-4", "model.masking.ratio=0.25", "data.dataset.variable_length=false"])
    assert cfg.train.base_lr == 3e-4 and cfg.train.steps == 4
    assert cfg.model.masking.ratio == 0.25 and cfg.model.masking.name == "random"
    assert cfg.data.dataset.variable_length is False
    assert cfg.model.target.name == "identity"  # the modality's default target
    assert cfg.model.tokenizer.max_length == 16  # the tokenizer dataclass default
    assert cfg.output_dir == "runs/toy"  # interpolated
    assert model_dict(cfg)["encoder"] == {
        "dim": 32,
        "depth": 2,
        "heads": 4,
        "mlp_ratio": 4.0,
        "class_token": False,
        "norm_eps": 1e-6,
        "norm_placement": "pre",
        "rotary": False,
        "rotary_base": 10000.0,
        "dropout": 0.0,
    }


def test_switching_policy_by_override_takes_its_fields(recipe):
    cfg = load_recipe(recipe, ["model.masking.name=random_of_valid"])
    assert cfg.model.masking.name == "random_of_valid"


def test_switching_a_part_by_override_drops_the_previous_parts_options(recipe, tmp_path):
    with_options = tmp_path / "with-options.yaml"
    with_options.write_text(RECIPE.replace("masking: {name: random, ratio: 0.5}", "target: {name: scaled, factor: 3.0}"))
    assert load_recipe(with_options).model.target.factor == 3.0
    cfg = load_recipe(with_options, ["model.target.name=identity"])  # identity has no 'factor'
    assert cfg.model.target == {"name": "identity"}
    with pytest.raises(ConfigError, match="unknown key 'model.target.factor'"):
        load_recipe(with_options, ["model.target.name=identity", "model.target.factor=2.0"])  # given with the switch: an error


def test_steps_and_epochs_are_one_budget_the_overrides_decide(recipe, tmp_path):
    assert load_recipe(recipe, ["train.epochs=3"]).train.epochs == 3  # an override of epochs replaces steps
    by_epochs = tmp_path / "by-epochs.yaml"
    by_epochs.write_text(RECIPE.replace("steps: 4", "epochs: 2.5"))
    assert load_recipe(by_epochs).train.epochs == 2.5
    cfg = load_recipe(by_epochs, ["train.steps=7"])  # so does one of steps: no silently ignored steps=
    assert cfg.train.steps == 7 and cfg.train.epochs == 0
    with pytest.raises(ConfigError, match="train.steps and train.epochs are both given; give one"):
        load_recipe(recipe, ["train.steps=7", "train.epochs=2"])
    both = tmp_path / "both.yaml"
    both.write_text(RECIPE.replace("steps: 4", "steps: 4\n  epochs: 2"))
    with pytest.raises(ConfigError, match="both.yaml: train.steps and train.epochs are both given"):
        load_recipe(both)
    with pytest.raises(ConfigError, match=r"train.epochs: got -1.0; accepted: a finite number >= 0"):
        load_recipe(recipe, ["train.epochs=-1"])


def test_switching_a_shipped_dataset_by_override():
    cfg = load_recipe("image-mae-demo", ["data.dataset.name=folder", "data.dataset.path=/data/photos"])
    assert cfg.data.dataset.name == "folder" and cfg.data.dataset.path == "/data/photos"
    assert "num_train" not in cfg.data.dataset  # mnist-demo's option was dropped with it


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.stpes=3", r"unknown key 'train.stpes'; did you mean steps\?"),
        ("model.masking.ratoi=0.3", r"unknown key 'model.masking.ratoi'; did you mean ratio\?"),
        ("train.steps=many", r"train.steps: got 'many', expected an integer"),
        ("train.base_lr=fast", r"train.base_lr: got 'fast', expected a number"),
        (
            "model.masking.name=tube",
            r"model.masking.name: unknown masking policy 'tube' for modality 'signal'; available: random, random_of_valid",
        ),
        (
            "data.dataset.name=imagenet",
            r"data.dataset.name: unknown dataset 'imagenet' for modality 'signal'; available: (noisy_waves, )?waves",
        ),
        ("model.modality=sonar", r"model.modality: unknown modality 'sonar'; available: .*signal"),
        ("train.steps", r"bad override"),
    ],
)
def test_bad_overrides_name_the_key(recipe, override, message):
    with pytest.raises(ConfigError, match=message):
        load_recipe(recipe, [override])


def test_missing_recipe_lists_registered_ones(toy_registry):
    with pytest.raises(ConfigError, match="neither a file nor a registered recipe"):
        load_recipe("no-such-recipe")


def test_missing_required_key(tmp_path, toy_registry):
    path = tmp_path / "r.yaml"
    path.write_text("model: {modality: signal}\ndata: {dataset: {name: waves}}\n")
    with pytest.raises(ConfigError, match="required key.*name"):
        load_recipe(path)
