"""SIGKILL and resume on real recipes whose datasets draw per-sample randomness (protein-mlm's random
crops, an image folder's flips) and on streamed datasets (protein sequences in parquet files read by
Hugging Face datasets, images in webdataset tar shards read by a loader worker): the resumed run logs the
uninterrupted run's losses exactly, with one process and with two (where the launcher itself is killed and
its workers must end)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

HERE = Path(__file__).parent
WORKER = HERE / "mm_worker.py"
TINY = [
    "model.encoder.dim=32",
    "model.encoder.depth=1",
    "model.encoder.heads=2",
    "data.batch_size=4",
    "train.steps=8",
    "train.warmup_steps=2",
    "train.log_every=1",
    "train.checkpoint_every=3",
    "train.trackers=[]",
    "train.picture_every=0",
    "data.eval_batches=1",
]
RECIPES = {
    # the demo proteome: long proteins, so every sample is cropped
    "protein": ["protein-mlm", "data.dataset.corpus=proteome", "model.tokenizer.max_length=48", *TINY],
    "image": [
        "image-mae",
        "model.tokenizer.image_size=[16,16]",
        "model.tokenizer.patch_size=4",
        "model.decoder.dim=16",
        "model.decoder.depth=1",
        "model.decoder.heads=2",
        "data.dataset.hflip=true",
        "data.dataset.test_fraction=0.2",
        "data.num_workers=1",
        *TINY,
    ],
}
STREAMS = {  # three shards: they do not divide between two ranks
    "protein-hf": [
        "protein-mlm",
        "model.tokenizer.max_length=48",
        "data.dataset.name=hf",
        "data.dataset.path=parquet",
        "data.dataset.buffer_size=16",
        "data.dataset.test_records=8",
        *TINY,
    ],
    "image-webdataset": [
        "image-mae",
        "model.tokenizer.image_size=[16,16]",
        "model.tokenizer.patch_size=4",
        "model.decoder.dim=16",
        "model.decoder.depth=1",
        "model.decoder.heads=2",
        "data.num_workers=1",
        "data.dataset.name=webdataset",
        "data.dataset.buffer_size=8",
        *TINY,
    ],
}


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for label in ("left", "right"):
        (root / label).mkdir()
        for i in range(12):
            pixels = rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)
            pixels[:, :8] //= 4 if label == "left" else 1  # not flip-symmetric: a flip changes the loss
            Image.fromarray(pixels).save(root / label / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def shards(tmp_path_factory, image_folder):
    """The image folder as three tar shards (png + cls), and 60 protein sequences as three parquet files."""
    import io
    import tarfile

    import pyarrow as pa
    import pyarrow.parquet as pq

    root = tmp_path_factory.mktemp("shards")
    files = sorted(image_folder.rglob("*.png"))
    for shard in range(3):
        with tarfile.open(root / f"images-{shard}.tar", "w") as tar:
            for i, path in enumerate(files[shard::3]):
                for ext, data in (("png", path.read_bytes()), ("cls", str(int(path.parent.name == "right")).encode())):
                    info = tarfile.TarInfo(f"{shard}{i:04d}.{ext}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
    rng = np.random.default_rng(1)
    letters = np.array(list("ACDEFGHIKLMNPQRSTVWY"))
    for shard in range(3):
        sequences = ["".join(rng.choice(letters[: 8 + shard * 4], size=int(rng.integers(30, 90)))) for _ in range(20)]
        pq.write_table(pa.table({"sequence": sequences}), root / f"proteins-{shard}.parquet")
    return root


def mm(out, args, processes=1, kill_at=None, resume=False, port=29540):
    launch = [sys.executable]
    if processes > 1:
        launch += [
            "-m",
            "accelerate.commands.launch",
            "--multi_gpu",
            "--num_machines",
            "1",
            "--num_processes",
            str(processes),
            "--main_process_port",
            str(port),
        ]
    options = [f"--kill-at-step={kill_at}"] if kill_at else []
    cmd = [*launch, str(WORKER), *options, "train", *args, f"output_dir={out}", *(["--resume"] if resume else [])]
    env = dict(os.environ, OMP_NUM_THREADS="1", ACCELERATE_USE_CPU="true", PYTHONPATH=str(HERE), HF_HUB_OFFLINE="1")
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


def losses(out):
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["train/loss"] for r in rows}


@pytest.mark.parametrize("processes", [1, 2])
@pytest.mark.parametrize("name", ["protein", "image"])
def test_sigkill_and_resume_gives_the_uninterrupted_losses(tmp_path, image_folder, name, processes):
    args = RECIPES[name] + ([f"data.dataset.path={image_folder}"] if name == "image" else [])
    port = 29540 + 2 * processes + (name == "image")
    full = mm(tmp_path / "full", args, processes, port=port)
    assert full.returncode == 0, full.stderr[-3000:]
    killed = mm(tmp_path / "cut", args, processes, kill_at=5, port=port)
    assert killed.returncode != 0 and not (tmp_path / "cut" / "model").exists()
    assert max(losses(tmp_path / "cut")) == 5  # the kill landed after step 5, past the step-3 checkpoint
    resumed = mm(tmp_path / "cut", args, processes, resume=True, port=port)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from" in resumed.stdout and "step-00000003" in resumed.stdout
    assert losses(tmp_path / "cut") == losses(tmp_path / "full")
    assert len(set(losses(tmp_path / "full").values())) == 8


@pytest.mark.parametrize("processes", [1, 2])
@pytest.mark.parametrize("name", ["protein-hf", "image-webdataset"])
def test_sigkill_and_resume_of_a_stream_gives_the_uninterrupted_losses(tmp_path, shards, name, processes):
    where = {
        "protein-hf": [f"data.dataset.data_files={shards}/proteins-*.parquet"],
        "image-webdataset": [f"data.dataset.urls={shards}/images-{{0..2}}.tar"],
    }
    args = STREAMS[name] + where[name]
    port = 29550 + 2 * processes + (name == "image-webdataset")
    full = mm(tmp_path / "full", args, processes, port=port)
    assert full.returncode == 0, full.stderr[-3000:]
    killed = mm(tmp_path / "cut", args, processes, kill_at=5, port=port)
    assert killed.returncode != 0 and not (tmp_path / "cut" / "model").exists()
    assert max(losses(tmp_path / "cut")) == 5
    state = json.loads((tmp_path / "cut" / "checkpoints" / "step-00000003" / "trainer_state.json").read_text())
    assert len(state["data"]) == processes and all("stream" in rank for rank in state["data"])
    if name == "image-webdataset" and processes == 1:  # the position is per loader worker: their count must stay
        other = mm(tmp_path / "cut", [*args, "data.num_workers=0"], processes, resume=True, port=port)
        assert other.returncode != 0 and "data.num_workers is 1 there, 0 here" in other.stderr, other.stderr[-2000:]
    resumed = mm(tmp_path / "cut", args, processes, resume=True, port=port)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from" in resumed.stdout and "step-00000003" in resumed.stdout
    assert losses(tmp_path / "cut") == losses(tmp_path / "full")
    assert len(set(losses(tmp_path / "full").values())) == 8
