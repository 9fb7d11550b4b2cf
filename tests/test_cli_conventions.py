"""CLI conventions (mm env, --dry-run, examples in every --help, advice one can type) and the Python API that mirrors it."""

import argparse
import importlib.metadata
import json
import re

import numpy as np
import pytest
from PIL import Image

import mmcore
from mmcore import Command, ConfigError, hookimpl, plugins
from mmcore.cli import build_parser, main
from toy import TOY_RECIPE, Waves


def subcommands(parser, prefix="mm"):
    """(``mm name``, parser) for every subcommand, nested ones (``mm recipes ls``) too."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield f"{prefix} {name}", sub
                yield from subcommands(sub, f"{prefix} {name}")


class Offers:
    def __init__(self, *commands):
        self.commands = commands

    @hookimpl
    def register_commands(self, register):
        for command in self.commands:
            register(command)


class BrokenHook:
    @hookimpl
    def register_masking_policies(self, register):
        raise RuntimeError("policy table is corrupt")


@pytest.fixture
def recipe(tmp_path, toy_registry):
    path = tmp_path / "toy.yaml"
    path.write_text(TOY_RECIPE)
    return path


def test_every_subcommand_help_shows_an_example(toy_registry):
    toy_registry.add_plugin(
        Offers(
            Command("shout", "print loudly", lambda p: None, print, examples=("mm shout",)),
            Command("whisper", "print softly", lambda p: None, print, usage="mm whisper"),
        ),
        "talk",
    )
    found = dict(subcommands(build_parser()))
    assert {"mm train", "mm env", "mm reconstruct", "mm recipes cp", "mm shout", "mm whisper"} <= set(found)
    for name, parser in found.items():
        help_text = parser.format_help()
        examples = help_text.partition("examples:")[2]
        assert f"$ {name}" in examples, f"{name} --help shows no example:\n{help_text}"


def test_env_lists_versions_device_and_a_broken_plugin(monkeypatch, capsys):
    missing = importlib.metadata.EntryPoint(name="mm_gone", value="mm_gone_no_such_module", group=plugins.ENTRY_POINT_GROUP)
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group=None: [missing])
    monkeypatch.delenv("MMCORE_LOAD_PLUGINS", raising=False)
    plugins.reset_registry()
    try:
        plugins.get_registry().add_plugin(BrokenHook(), "mm_corrupt")
        assert main(["env"]) == 0
        text = capsys.readouterr().out
        assert main(["env", "--json"]) == 0
        info = json.loads(capsys.readouterr().out)
    finally:
        plugins.reset_registry()
    for line in (
        "python: 3.",
        f"torch: {importlib.metadata.version('torch')}",
        "accelerate: ",
        "transformers: ",
        "huggingface_hub: ",
        "mmcore: ",
        "platform: ",
        "device: ",
    ):
        assert line in text
    assert "torch threads" in info["device"] and info["accelerate"] == importlib.metadata.version("accelerate")
    assert "plugin mm_gone: broken: import failed: ModuleNotFoundError" in text
    assert "plugin mm_corrupt: broken: hook register_masking_policies failed" in text
    assert {p["name"]: p["status"] for p in info["plugins"]} == {"mm_gone": "broken", "mm_corrupt": "broken"}


def test_train_dry_run_prints_the_resolved_recipe_and_builds_nothing(recipe, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", str(recipe), f"output_dir={out}", "--dry-run", "train.steps=3"]) == 0
    printed = capsys.readouterr().out
    assert f"output_dir: {out}" in printed and "steps: 3" in printed and "ratio: 0.5" in printed
    assert not out.exists()
    assert main(["train", str(recipe), "train.stpes=3", "--dry-run"]) == 2
    assert "unknown key 'train.stpes'" in capsys.readouterr().err


@pytest.fixture
def image_model(tmp_path):
    """An untrained 1-channel image model with 4-pixel patches: reconstruct only needs the folder."""
    pytest.importorskip("mm_image")
    from mmcore.model import MaskedModel, record_sources
    from mmcore.testing import tiny_config

    plugins.reset_registry()
    config = tiny_config("image", "random", tokenizer={"image_size": [16, 16], "patch_size": 4, "channels": 1})
    config.update(record_sources(config))
    MaskedModel(config).save_pretrained(tmp_path / "model")
    yield tmp_path / "model"
    plugins.reset_registry()


@pytest.mark.parametrize("size, mode", [((45, 30), "L"), ((16, 16), "RGB")])
def test_reconstruct_advice_is_a_flag_it_has(image_model, tmp_path, capsys, size, mode):
    image = tmp_path / "odd.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, size[::-1], np.uint8)).convert(mode).save(image)
    args = ["reconstruct", str(image_model), str(image), "-o", str(tmp_path / "rec.png")]
    assert main(args) == 2
    error = capsys.readouterr().err
    advice = re.search(r"let mm reconstruct do it: (--[a-z]+(?: \d+)*)", error)
    assert advice, error
    flag = advice.group(1).split()
    with pytest.raises(SystemExit):
        main(["reconstruct", "--help"])
    assert flag[0] in capsys.readouterr().out
    assert main(args + flag) == 0, capsys.readouterr().err
    assert Image.open(tmp_path / "rec.png").width > 0


def test_train_api_takes_overrides_and_its_features_fit_sklearn(recipe, tmp_path):
    from sklearn.linear_model import LogisticRegression

    with pytest.raises(ConfigError, match="unknown key 'train.stpes'"):
        mmcore.train(recipe, train__stpes=3)
    folder = mmcore.train(recipe, output_dir=tmp_path / "run", train__steps=4, **{"data.batch_size": 4})
    assert folder == tmp_path / "run" / "model" and (folder / "model.safetensors").is_file()
    assert json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])["step"] == 4
    model = mmcore.from_pretrained(folder)
    samples = Waves(num_train=60).build(model.tokenizer, "train")
    X, y = mmcore.features(model, samples, batch_size=16), np.array([s["label"] for s in samples])
    assert X.shape == (60, 32) and X.dtype == np.float32
    assert LogisticRegression(max_iter=1000).fit(X, y).score(X, y) > 0.5  # 3 classes: chance is 1/3


def test_mmcore_train_is_the_api_and_the_executor_keeps_its_module():
    import mmcore.executor

    assert mmcore.train.__module__ == "mmcore" and mmcore.executor.train.__module__ == "mmcore.executor"


def test_py_typed_ships():
    from pathlib import Path

    assert (Path(mmcore.__file__).parent / "py.typed").is_file()
    assert '"py.typed"' in (Path(mmcore.__file__).parents[1] / "pyproject.toml").read_text()
