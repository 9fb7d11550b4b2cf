"""The recipes parse against the registered parts, and a tiny run trains end to end."""

import shutil

import numpy as np
import pytest
import torch

from mm_audio import FbankTokenizer, SpokenDigits
from mm_audio.demo import clip_settings
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
    "train.steps=2",
    "train.warmup_steps=1",
    "train.log_every=1",
    "train.trackers=[]",
]


def test_recipes_parse_and_check_keys():
    cfg = load_recipe("audio-mae")
    assert cfg.model.tokenizer.num_mel_bins == 128 and cfg.model.tokenizer.frame_shift_ms == 10.0
    assert cfg.model.masking.name == "random" and cfg.model.masking.ratio == 0.8
    assert load_recipe("audio-mae-folder", ["data.dataset.path=/x"]).model.tokenizer.target_frames == 1024
    with pytest.raises(ConfigError, match="unknown key 'model.masking.ratoi'"):
        load_recipe("audio-mae", ["model.masking.ratoi=0.5"])


def test_folder_recipe_trains_and_writes_a_model_folder(tmp_path, write_audio):
    for i in range(8):
        write_audio(tmp_path / "clips" / ("low" if i % 2 else "high") / f"{i}.flac", seconds=0.3 + 0.1 * i, freq=300.0 + 200 * i)
    cfg = load_recipe(
        "audio-mae-folder",
        TINY
        + [
            f"output_dir={tmp_path / 'run'}",
            f"data.dataset.path={tmp_path / 'clips'}",
            "data.dataset.test_fraction=0.25",
            "data.num_workers=0",
            "model.tokenizer.target_frames=64",
            "model.tokenizer.patch_size=[8,16]",
        ],
    )
    folder = train(cfg)
    assert (folder / "model.safetensors").exists() and (folder / "reconstruction.png").exists()
    import json

    config = json.loads((folder / "config.json").read_text())
    assert config["tokenizer"]["mean"] is not None and config["plugins"]["mm-audio"]


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="the spoken-digits demo needs espeak-ng (apt-get install espeak-ng)")
def test_spoken_digits_generated_once_and_cached(tmp_path):
    tok = FbankTokenizer(target_frames=64, patch_size=[8, 16])
    demo = SpokenDigits(num_clips=20, test_fraction=0.25, cache_dir=str(tmp_path))
    train_set, test_set = demo.build(tok, "train"), demo.build(tok, "test")
    assert (len(train_set), len(test_set)) == (15, 5)
    cached = list(tmp_path.glob("spoken-digits-v1-20.npz"))
    assert len(cached) == 1
    mtime = cached[0].stat().st_mtime
    again = SpokenDigits(num_clips=20, test_fraction=0.25, cache_dir=str(tmp_path)).build(tok, "train")
    assert cached[0].stat().st_mtime == mtime  # read, not regenerated
    waves = [train_set.wave(i) for i in range(len(train_set))]
    assert all(0.15 < len(w) / 16000 < 1.5 for w in waves)  # one word each, silence trimmed
    assert {train_set[i]["label"] for i in range(len(train_set))} | {test_set[i]["label"] for i in range(5)} == set(range(10))
    assert torch.equal(again[3]["fbank"], train_set[3]["fbank"])
    assert train_set[0]["fbank"].shape[1] == 128
    voices = {clip_settings(i)["voice"] for i in range(20)}
    assert len(voices) > 10
    assert np.isfinite(train_set[0]["fbank"].numpy()).all()
