"""A third party joins a joint model without any change to mmcore or the shipped plugins.

tests/third_party/mm-bars is its own distribution (entry point ``bars``); it is
built and installed with pip into a separate folder, discovered through its
entry point, and trained in one recipe with mm-image and mm-text.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import mmcore
from mmcore import plugins

PLUGIN = Path(__file__).parent / "third_party" / "mm-bars"

RECIPE = {
    "name": "bars-image-text",
    "model": {
        "modalities": {
            "image": {
                "tokenizer": {"image_size": [28, 28], "patch_size": 7, "channels": 1},
                "masking": {"name": "random", "ratio": 0.75},
                "target": {"name": "pixels", "norm_pix": False},
            },
            "text": {
                "tokenizer": {"train": "wordpiece", "train_vocab_size": 64, "max_length": 8},
                "masking": {"name": "bert", "ratio": 0.5},
            },
            "bars": {"masking": {"name": "random", "ratio": 0.5}},
        },
        "hide_one_prob": 0.5,
        "encoder": {"dim": 32, "depth": 1, "heads": 2},
        "decoder": {"dim": 16, "depth": 1, "heads": 2},
    },
    "data": {
        "dataset": {
            "name": "paired",
            "modalities": {
                "bars": {"name": "bars", "per_label": 10},
                "image": {"name": "mnist-demo", "num_train": 200},
                "text": {"name": "digit-words", "per_label": 5},
            },
        },
        "batch_size": 16,
    },
    "train": {"steps": 6, "log_every": 3, "trackers": []},
}


def run(*args, cwd, env=None):
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_an_installed_third_party_modality_trains_beside_shipped_plugins(tmp_path, monkeypatch):
    site = tmp_path / "site"
    done = run("-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", str(site), str(PLUGIN), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    env = {**os.environ, "PYTHONPATH": str(site), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    env.pop("MMCORE_LOAD_PLUGINS", None)
    listed = json.loads(run("-m", "mmcore", "plugins", cwd=tmp_path, env=env).stdout)
    bars = [p for p in listed if p["distribution"] == "mm-bars"]
    assert len(bars) == 1 and bars[0]["status"] == "ok" and bars[0]["version"] == "0.3.0"

    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(RECIPE))
    trained = run("-m", "mmcore", "train", str(recipe), f"output_dir={tmp_path / 'run'}", cwd=tmp_path, env=env)
    assert trained.returncode == 0, trained.stderr[-3000:]
    config = json.loads((tmp_path / "run" / "model" / "config.json").read_text())
    assert set(config["modalities"]) == {"image", "text", "bars"}
    assert config["parts"]["bars.modality"] == {"name": "bars", "plugin": "mm-bars", "version": "0.3.0"}
    assert config["plugins"]["mm-bars"] == "0.3.0" and "mm-image" in config["plugins"] and "mm-text" in config["plugins"]

    # without the third party installed (as in this process, which never had site/ on its path), loading names
    # it with its pip line
    monkeypatch.delenv("MMCORE_LOAD_PLUGINS", raising=False)
    plugins.reset_registry()
    with pytest.raises(mmcore.MMCoreError, match=re.escape("pip install 'mm-bars>=0.3.0'")):
        mmcore.from_pretrained(tmp_path / "run" / "model")
