"""The recipes parse against the registered parts, and the demo recipe trains end to end."""

import json

import pytest

from mmcore.config import load_recipe
from mmcore.errors import ConfigError
from mmcore.executor import train

TINY = [
    "model.encoder.dim=32",
    "model.encoder.depth=1",
    "model.encoder.heads=2",
    "model.decoder.dim=16",
    "model.decoder.depth=1",
    "model.decoder.heads=2",
    "data.batch_size=4",
    "data.eval_batches=1",
    "data.dataset.num_train=4990",
    "train.steps=2",
    "train.warmup_steps=1",
    "train.log_every=1",
    "train.trackers=[]",
]


def test_recipes_parse_and_check_keys():
    cfg = load_recipe("video-mae")
    assert cfg.model.masking.name == "tube" and cfg.model.masking.ratio == 0.75
    assert list(cfg.model.tokenizer.tubelet_size) == [4, 4, 4] and list(cfg.model.tokenizer.image_size) == [32, 32]
    big = load_recipe("video-mae-folder", ["data.dataset.path=/x"])
    assert list(big.model.tokenizer.tubelet_size) == [2, 16, 16] and big.model.tokenizer.num_frames == 16
    assert (big.data.dataset.stride, big.data.dataset.min_stride) == (4, 1)  # 16-frame clips read, at stride 1
    with pytest.raises(ConfigError, match="data.dataset.stride"):
        load_recipe("video-mae-folder", ["data.dataset.path=/x", "data.dataset.stride=fast"])


def test_demo_recipe_trains_and_writes_a_model_folder(tmp_path):
    folder = train(load_recipe("video-mae", TINY + [f"output_dir={tmp_path}"]))
    assert (folder / "model.safetensors").exists() and (folder / "reconstruction.png").exists()
    config = json.loads((folder / "config.json").read_text())
    assert config["modality"] == "video" and config["plugins"]["mm-video"]
