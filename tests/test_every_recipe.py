"""Every registered recipe loads, builds its data and model, and takes one training step, at a tiny size.

A recipe no test runs rots silently (a renamed key, a dataset option a plugin dropped); this test
finds every recipe through the registry, so a new one is covered the day it is registered. Folder
recipes read small real files written here.
"""

import av
import numpy as np
import pytest
import soundfile as sf
import torch
from omegaconf import OmegaConf
from PIL import Image

from mmcore.config import is_joint, load_recipe, model_dict
from mmcore.plugins import get_registry
from mmcore.executor import build_joint, build_single

TINY = [
    "model.encoder.dim=32",
    "model.encoder.depth=1",
    "model.encoder.heads=2",
    "model.decoder.dim=16",
    "model.decoder.depth=1",
    "model.decoder.heads=2",
    "data.batch_size=2",
    "data.num_workers=0",
]
SMALLER = {  # the demo datasets, a few samples each
    "image-mae-demo": ["data.dataset.num_train=16"],
    "audio-mae": ["data.dataset.num_clips=12"],
    "video-mae": ["data.dataset.num_train=4", "model.tokenizer.image_size=[32,32]"],
    "pointcloud-mae": ["data.dataset.num_train=8", "data.dataset.num_test=4"],
    "multimodal-digits": [
        "data.dataset.modalities.image.num_train=20",
        "data.dataset.modalities.audio.num_clips=20",
        "data.dataset.modalities.text.per_label=2",
    ],
    "image-mae": ["model.tokenizer.image_size=[32,32]"],
    "video-mae-folder": ["model.tokenizer.image_size=[32,32]", "model.tokenizer.num_frames=4", "data.dataset.stride=1"],
}


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """A small folder of real files for each folder recipe's modality."""
    root = tmp_path_factory.mktemp("folders")
    rng = np.random.default_rng(0)
    for kind in ("images", "clips", "videos"):
        for label in ("a", "b"):
            (root / kind / label).mkdir(parents=True)
    for label in ("a", "b"):
        for i in range(4):
            Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(root / "images" / label / f"{i}.png")
            wave = 0.3 * np.sin(np.arange(16000) * (0.05 + 0.01 * i)) + 0.01 * rng.standard_normal(16000)
            sf.write(root / "clips" / label / f"{i}.wav", wave.astype(np.float32), 16000)
            with av.open(str(root / "videos" / label / f"{i}.mp4"), "w") as container:
                stream = container.add_stream("mpeg4", rate=25)
                stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
                for _ in range(12):
                    frame = av.VideoFrame.from_ndarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8), format="rgb24")
                    container.mux(stream.encode(frame))
                container.mux(stream.encode())
    return {"image": root / "images", "audio": root / "clips", "video": root / "videos"}


@pytest.mark.parametrize("name", get_registry().names("recipes"))
def test_every_recipe_takes_a_training_step(name, folders):
    registry = get_registry()
    plain = load_recipe(name, ["data.dataset.path=unused"] if "path" in _dataset_keys(name) else [])
    path = [f"data.dataset.path={folders[plain.model.modality]}"] if "path" in _dataset_keys(name) else []
    cfg = load_recipe(name, [*TINY, *SMALLER.get(name, []), *path], registry)
    build = build_joint if is_joint(cfg) else build_single
    model, train_set, _, collate = build(model_dict(cfg), OmegaConf.to_container(cfg.data.dataset))
    batch = collate([train_set[i] for i in range(2)])
    total, count = model(batch, generator=torch.Generator().manual_seed(0)).loss_terms({})
    assert count > 0 and torch.isfinite(total)
    (total / count).backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads) and any(g.abs().sum() > 0 for g in grads)


def _dataset_keys(name: str) -> set[str]:
    return set(OmegaConf.load(get_registry().recipe(name)).get("data", {}).get("dataset", {}).keys())
