"""Recipe values and config.json checked before anything runs: one line naming the key, what was
found and what is accepted (issue #16, items 6 and 7)."""

import importlib.util
import json
import math
import time

import pytest

import mmcore
import mmcore.model
from mmcore.cli import build_parser, main, parse
from mmcore.config import TrainConfig, load_recipe, model_dict
from mmcore.errors import ConfigError, MMCoreError
from mmcore.model import MaskedModel
from mmcore.plugins import get_registry
from toy import TOY_RECIPE

RECIPE = TOY_RECIPE

AT_LEAST_1 = "an integer >= 1"
AT_LEAST_0 = "an integer >= 0"
NUMBER = "a finite number >= 0"
BETAS = r"a list of 2 numbers, each in \[0, 1\)"
BAD_VALUES = [  # (override(s), key named, accepted range named)
    ("train.steps=0", "train.steps", AT_LEAST_1),
    ("train.steps=-5", "train.steps", AT_LEAST_1),
    ("train.grad_accum=0", "train.grad_accum", AT_LEAST_1),
    ("data.batch_size=0", "data.batch_size", AT_LEAST_1),
    ("data.batch_size=-8", "data.batch_size", AT_LEAST_1),
    ("train.checkpoint_every=0", "train.checkpoint_every", AT_LEAST_1),
    ("train.log_every=0", "train.log_every", AT_LEAST_1),
    ("data.eval_batches=0", "data.eval_batches", AT_LEAST_1),
    ("data.num_workers=-1", "data.num_workers", AT_LEAST_0),
    ("train.warmup_steps=-1", "train.warmup_steps", AT_LEAST_0),
    ("train.keep_checkpoints=-1", "train.keep_checkpoints", AT_LEAST_0),
    ("train.picture_every=-1", "train.picture_every", AT_LEAST_0),
    ("train.base_lr=-1e-3", "train.base_lr", NUMBER),
    ("train.base_lr=nan", "train.base_lr", NUMBER),
    ("train.base_lr=inf", "train.base_lr", NUMBER),
    ("train.min_lr=-1", "train.min_lr", NUMBER),
    ("train.weight_decay=nan", "train.weight_decay", NUMBER),
    ("train.weight_decay=-0.05", "train.weight_decay", NUMBER),
    ("train.grad_clip=-1", "train.grad_clip", NUMBER),
    ("train.grad_clip=inf", "train.grad_clip", NUMBER),
    ("train.betas=[0.9]", "train.betas", BETAS),
    ("train.betas=[0.9,1.0]", "train.betas", BETAS),
    ("train.betas=[-0.1,0.9]", "train.betas", BETAS),
    ("train.betas=[0.9,0.95,0.99]", "train.betas", BETAS),
    ("train.betas=[0.9,nan]", "train.betas", BETAS),
    ("train.seed=-1", "train.seed", r"an integer in \[0, 4294967295\]"),
    ("train.seed=4294967296", "train.seed", r"an integer in \[0, 4294967295\]"),
    ("train.precision=fp8", "train.precision", "one of auto, bf16, fp16, no"),
    ("train.loss_weights.signal=-1", "train.loss_weights.signal", NUMBER),
    ("train.loss_weights.signal=nan", "train.loss_weights.signal", NUMBER),
    ("model.style=gpt", "model.style", "one of null, mae, bert"),
    ("model.init=xavier", "model.init", "one of mae, normal"),
    ("model.hide_one_prob=1.5", "model.hide_one_prob", r"a finite number in \[0, 1\]"),
    ("model.input_keep_prob=-0.1", "model.input_keep_prob", r"a finite number in \[0, 1\]"),
    ("model.encoder.dim=0", "model.encoder.dim", r"an integer in \[1, 65536\]"),
    ("model.encoder.depth=-1", "model.encoder.depth", r"an integer in \[0, 1024\]"),
    ("model.encoder.depth=1000000000", "model.encoder.depth", r"an integer in \[0, 1024\]"),
    ("model.decoder.heads=0", "model.decoder.heads", r"an integer in \[1, 1024\]"),
    ("model.encoder.mlp_ratio=0", "model.encoder.mlp_ratio", r"a finite number in \(0, 64\]"),
    ("model.encoder.mlp_ratio=nan", "model.encoder.mlp_ratio", r"a finite number in \(0, 64\]"),
    ("model.encoder.dropout=1.0", "model.encoder.dropout", r"a finite number in \[0, 1\)"),
    ("model.encoder.dropout=-0.1", "model.encoder.dropout", r"a finite number in \[0, 1\)"),
    ("model.encoder.heads=3", "model.encoder.heads", "a divisor of model.encoder.dim 32, e.g. 4"),
    ("model.decoder.heads=5", "model.decoder.heads", "a divisor of model.decoder.dim 16, e.g. 4"),
    (
        ["model.encoder.dim=65536", "model.encoder.depth=1024", "model.encoder.heads=64"],
        r"model.encoder \+ model.decoder",
        r"at most 2e\+10 parameters",
    ),  # 5.6e13 parameters: 224 TB
    ("train.trackers=[nonesuch]", "train.trackers", "aim, clearml, comet_ml, .*tensorboard.*, all, or \\[\\] for none"),
    pytest.param(
        "train.trackers=[wandb]",
        "train.trackers",
        r".*pip install wandb",
        marks=pytest.mark.skipif(importlib.util.find_spec("wandb") is not None, reason="wandb is installed"),
    ),
    pytest.param(
        "train.max_nonfinite_steps=0",
        "train.max_nonfinite_steps",
        AT_LEAST_1,
        marks=pytest.mark.skipif("max_nonfinite_steps" not in TrainConfig.__dataclass_fields__, reason="no train.max_nonfinite_steps"),
    ),
]


@pytest.fixture
def recipe(tmp_path, toy_registry):
    path = tmp_path / "toy.yaml"
    path.write_text(RECIPE)
    return path


@pytest.mark.parametrize("overrides, key, accepted", BAD_VALUES)
def test_bad_values_are_refused_naming_key_and_range(recipe, overrides, key, accepted):
    overrides = [overrides] if isinstance(overrides, str) else overrides
    with pytest.raises(ConfigError, match=f"toy.yaml: {key}: .*accepted: {accepted}") as info:
        load_recipe(recipe, overrides)
    assert "\n" not in str(info.value)


BAD_RECIPES = [  # (YAML text, key named); each was an AttributeError or InterpolationResolutionError before
    ("- name: toy\n- model: {}\n", "top level: got a list"),
    ("3\n", "cannot parse"),
    (RECIPE.replace("model:\n  modality: signal", "model: null\nx:\n  modality: signal"), "model: got null"),
    ("name: toy\nmodel: [signal]\n", "model: got a list"),
    ("name: toy\nmodel: {modality: signal}\ndata: 5\n", "data: got 5"),
    (RECIPE.replace("  masking: {name: random, ratio: 0.5}", "  masking: [random]"), "model.masking: got a list"),
    (RECIPE.replace("name: toy", "name: ${name}"), "name: cannot resolve"),
    (RECIPE + "output_dir: ${output_dir}/x\n", "output_dir: cannot resolve"),
    (RECIPE + "description: ${output_dir}\noutput_dir: ${description}\n", "cannot resolve"),
    ("name: toy\nmodel:\n  modalities: {signal: [1]}\n", "model.modalities.signal: got a list"),
    ("name: toy\nmodel:\n  modalities: {signal: null, word: {}}\n", "model.modalities.signal: got null"),
]


@pytest.mark.parametrize("text, message", BAD_RECIPES)
def test_malformed_recipes_are_one_line(tmp_path, toy_registry, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as info:
        load_recipe(path)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "recipe_name, override, message",
    [
        ("image-mae-demo", "model.masking.ratio=1.5", r"model.masking: masking ratio 1.5 .*accepted: 0 <= ratio < 1"),
        ("image-mae-demo", "model.masking.ratio=-0.1", r"model.masking: masking ratio -0.1 .*accepted: 0 <= ratio < 1"),
        ("text-mlm", "model.masking.ratio=1.0", r"model.masking: model.masking.ratio 1.0 .*accepted: 0 <= ratio <= 0.999"),
        (
            "multimodal-digits",
            "model.modalities.text.masking.ratio=2",
            r"model.modalities.text.masking: .*ratio 2.0 .*accepted: 0 <= ratio <= 0.999",
        ),
    ],
)
def test_masking_policies_check_their_options_at_validate_time(recipe_name, override, message):
    with pytest.raises(ConfigError, match=message):
        load_recipe(recipe_name, [override])


@pytest.mark.parametrize("name", get_registry().names("recipes"))
def test_every_registered_recipe_validates(name):
    try:
        cfg = load_recipe(name)
    except ConfigError as exc:  # the folder recipes ask for your data
        assert "data.dataset.path" in str(exc)
        cfg = load_recipe(name, ["data.dataset.path=/data"])
    assert cfg.train.steps >= 1


# -- the command line ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "command, key",
    [
        (["validate", "{recipe}", "train.steps=0"], "train.steps"),
        (["validate", "{recipe}", "train.grad_clip=-1"], "train.grad_clip"),
        (["train", "{recipe}", "data.eval_batches=0"], "data.eval_batches"),
        (["train", "{recipe}", "train.steps=2", "--resume", "model.encoder.heads=3"], "model.encoder.heads"),
        (["train", "{recipe}", "--resume", "train.weight_decay=nan"], "train.weight_decay"),
    ],
)
def test_cli_refuses_with_one_line_and_exit_2(recipe, tmp_path, capsys, command, key):
    argv = [a.format(recipe=recipe) for a in command] + [f"output_dir={tmp_path / 'run'}"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("mm: error: ") and f": {key}: got " in err
    assert "Traceback" not in err and not (tmp_path / "run").exists()  # refused before anything ran


def test_resume_is_accepted_anywhere_on_the_command_line():
    parser = build_parser()
    for argv in (
        ["train", "r", "a=1", "--resume", "b=2"],
        ["train", "r", "--resume", "a=1", "b=2"],
        ["train", "r", "a=1", "b=2", "--resume"],
    ):
        args = parse(parser, argv)
        assert args.resume and args.overrides == ["a=1", "b=2"]
    with pytest.raises(SystemExit):
        parse(parser, ["train", "r", "--resume", "--bogus"])


# -- config.json ------------------------------------------------------------------------


def toy_model_config():
    return {
        "modality": "signal",
        "style": "mae",
        "tokenizer": {"max_length": 16},
        "masking": {"name": "random", "ratio": 0.5},
        "target": {"name": "identity"},
        "encoder": {"dim": 32, "depth": 2, "heads": 4, "mlp_ratio": 2.0},
        "decoder": {"dim": 16, "depth": 1, "heads": 2, "mlp_ratio": 2.0},
    }


def changed(path, value):
    """The toy config with ``path`` ("encoder.dim") set to ``value`` (or removed when value is DELETE)."""
    config = toy_model_config()
    *parents, leaf = path.split(".")
    node = config
    for p in parents:
        node = node[p]
    if value is DELETE:
        del node[leaf]
    else:
        node[leaf] = value
    return config


DELETE = object()
JOINT = {
    "modalities": {
        "signal": {"masking": {"name": "random_of_valid"}, "target": {"name": "identity"}},
        "word": {"masking": {"name": "bert", "ratio": 0.5}, "target": {"name": "ids"}},
    },
    "style": "mae",
    "encoder": {"dim": 32, "depth": 1, "heads": 4},
    "decoder": {"dim": 16, "depth": 1, "heads": 2},
}
BAD_CONFIGS = [  # (config.json text, what the one line must say)
    ("[1, 2]", "got a list"),
    ('"signal"', "got 'signal'"),
    ('{"modality": "signal", ', "cannot read"),
    ("", "cannot read"),
    (json.dumps(changed("encoder", DELETE)), "encoder: got nothing"),
    (json.dumps(changed("modality", DELETE)), "modality: got nothing"),
    (json.dumps(changed("modality", "sonar")), "sonar"),
    (json.dumps(changed("encoder.dim", -8)), r"encoder.dim: got -8; accepted: an integer in \[1, 65536\]"),
    (json.dumps(changed("encoder.heads", 3)), "encoder.heads: got 3; accepted: a divisor of encoder.dim 32"),
    (json.dumps(changed("encoder.depth", 10**9)), r"encoder.depth: got 1000000000; accepted: an integer in \[0, 1024\]"),
    (json.dumps(changed("decoder.depth", 10**6)), r"decoder.depth: got 1000000; accepted"),
    (json.dumps(changed("encoder.dim", "wide")), "encoder.dim: got 'wide', expected an integer"),
    (json.dumps(changed("encoder.dim", "${width}")), r"encoder.dim: got '\$\{width\}', expected an integer"),
    (json.dumps(changed("encoder.dim", None)), "encoder.dim: got None"),
    (json.dumps(changed("encoder", None)), "encoder: got null"),
    (json.dumps(changed("encoder", [32, 2, 4])), "encoder: got a list"),
    (json.dumps(changed("encoder.mlp_ratio", math.nan)), r"encoder.mlp_ratio: got nan; accepted: a finite number"),
    (json.dumps(changed("encoder", {"dim": 65536, "depth": 1024, "heads": 64})), "at most 2e\\+10 parameters"),
    (json.dumps(changed("encoder.width", 32)), "unknown key 'encoder.width'"),
    (json.dumps(changed("masking.name", "tube")), "masking.name: unknown masking policy 'tube'"),
    (json.dumps(changed("masking.ratio", "high")), "masking.ratio: got 'high', expected a number"),
    (json.dumps(changed("style", "gpt")), "style: got 'gpt'; accepted: one of null, mae, bert"),
    (json.dumps(changed("init", "xavier")), "init: got 'xavier'; accepted: one of mae, normal"),
    (json.dumps(changed("tokenizer.max_length", "long")), "tokenizer.max_length: got 'long'"),
    (json.dumps(changed("tokenizer.max_length", -1)), "cannot be built"),  # the toy tokenizer has no check: the fallback
    (json.dumps({**toy_model_config(), "parts": [1]}), "parts: got a list"),
    (json.dumps({**toy_model_config(), "plugins": {"mm-nonesuch": "1.0"}}), "mm-nonesuch"),
    (json.dumps({**JOINT, "hide_one_prob": 2}), r"hide_one_prob: got 2.0; accepted: a finite number in \[0, 1\]"),
    (json.dumps({**JOINT, "modalities": {"signal": [1]}}), "modalities.signal: got a list"),
    (
        json.dumps({**JOINT, "modalities": {**JOINT["modalities"], "word": {"role": "teacher"}}}),
        "modalities.word.role: got 'teacher'; accepted: one of both, input, target",
    ),
]


@pytest.fixture
def folder(tmp_path, toy_registry, monkeypatch):
    """A saved toy model folder; building a backbone from a bad config.json fails the test."""
    from toy import WordPlugin

    toy_registry.add_plugin(WordPlugin(), "word")
    MaskedModel(toy_model_config()).save_pretrained(tmp_path / "m")

    def no_backbone(*args, **kwargs):
        raise AssertionError("a Transformer was built from a config.json that should have been refused")

    monkeypatch.setattr(mmcore.model, "Transformer", no_backbone)
    monkeypatch.setattr("mmcore.joint.Transformer", no_backbone)
    return tmp_path / "m"


@pytest.mark.parametrize("text, message", BAD_CONFIGS)
def test_crafted_config_json_is_one_line_before_any_allocation(folder, text, message):
    (folder / "config.json").write_text(text)
    start = time.perf_counter()
    with pytest.raises(MMCoreError, match=message) as info:
        mmcore.from_pretrained(str(folder))
    assert time.perf_counter() - start < 5 and "\n" not in str(info.value)


def test_a_good_config_json_still_loads(tmp_path, toy_registry):
    MaskedModel(toy_model_config()).save_pretrained(tmp_path / "m")
    model = mmcore.from_pretrained(str(tmp_path / "m"))
    assert model.config["encoder"] == {
        **toy_model_config()["encoder"],
        "class_token": False,
        "norm_eps": 1e-6,
        "norm_placement": "pre",
        "rotary": False,
        "rotary_base": 10000.0,
        "dropout": 0.0,
    }


@pytest.mark.parametrize("name", ["image-mae-demo", "text-mlm", "multimodal-digits"])
def test_config_json_of_shipped_recipes_passes_its_check_unchanged(name):
    from mmcore.config import check_model_config

    config = model_dict(load_recipe(name))
    assert check_model_config(config, f"{name}/config.json") == config


def test_config_json_strings_are_data_not_interpolations():
    """A learned vocabulary may hold "${" or "???": config.json is never read as OmegaConf interpolations."""
    from mmcore.config import check_model_config

    config = model_dict(load_recipe("text-mlm"))
    config["tokenizer"].update(tokenizer_json='{"vocab": {"${": 5, "${x}": 6, "???": 7}}', path="???")
    assert check_model_config(config, "text/config.json") == config
