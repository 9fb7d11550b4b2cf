"""``mm new-plugin``: the generated plugin is a real distribution that pip installs,
mmcore discovers, ``mm train`` trains and whose own conformance tests pass."""

import json
import os
import subprocess
import sys

import pytest

from mmcore.cli import main


def run(*args, cwd, env=None, timeout=300):
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def test_generated_plugin_installs_trains_and_passes_its_tests(tmp_path):
    assert main(["new-plugin", "wave", "--dest", str(tmp_path)]) == 0
    plugin = tmp_path / "mm-wave"
    assert sorted(p.relative_to(plugin).as_posix() for p in plugin.rglob("*") if p.is_file()) == [
        "README.md",
        "pyproject.toml",
        "src/mm_wave/__init__.py",
        "src/mm_wave/data.py",
        "src/mm_wave/picture.py",
        "src/mm_wave/recipes/wave-mae.yaml",
        "src/mm_wave/tokenizer.py",
        "tests/test_conformance.py",
    ]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "the staging folder was left behind"

    # a real wheel build and install (no network: the build backend comes from this environment)
    site = tmp_path / "site"
    done = run("-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", str(site), str(plugin), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    env = {**os.environ, "PYTHONPATH": str(site), "HF_HUB_OFFLINE": "1"}
    env.pop("MMCORE_LOAD_PLUGINS", None)

    listed = run("-m", "mmcore", "plugins", cwd=tmp_path, env=env)
    wave = [p for p in json.loads(listed.stdout) if p["distribution"] == "mm-wave"]
    assert len(wave) == 1 and wave[0]["status"] == "ok" and wave[0]["modalities"] == ["wave"], listed.stdout

    tests = run("-m", "pytest", "-q", "-p", "no:cacheprovider", str(plugin / "tests"), cwd=tmp_path, env=env)
    assert tests.returncode == 0 and " passed" in tests.stdout, tests.stdout + tests.stderr

    trained = run(
        "-m",
        "mmcore",
        "train",
        "wave-mae",
        "train.steps=40",
        "train.log_every=20",
        "data.dataset.num_train=128",
        "data.batch_size=16",
        f"output_dir={tmp_path / 'run'}",
        cwd=tmp_path,
        env=env,
    )
    assert trained.returncode == 0, trained.stderr[-2000:]
    model = tmp_path / "run" / "model"
    assert {"config.json", "model.safetensors", "README.md", "reconstruction.png"} <= {p.name for p in model.iterdir()}
    config = json.loads((model / "config.json").read_text())
    assert config["modality"] == "wave" and config["tokenizer"]["std"] > 0  # fitted on the demo split and saved


@pytest.mark.parametrize(
    "name, message",
    [
        ("Bad-Name", "plugin name 'Bad-Name' is invalid"),
        ("1wave", "plugin name '1wave' is invalid"),
        ("image", "a modality named 'image' is already installed"),
    ],
)
def test_bad_names_get_one_line(tmp_path, capsys, name, message):
    assert main(["new-plugin", name, "--dest", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not list(tmp_path.iterdir())


def test_an_existing_folder_is_never_overwritten(tmp_path, capsys):
    (tmp_path / "mm-wave").mkdir()
    (tmp_path / "mm-wave" / "mine.txt").write_text("keep")
    assert main(["new-plugin", "wave", "--dest", str(tmp_path)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert (tmp_path / "mm-wave" / "mine.txt").read_text() == "keep"
    assert [p.name for p in tmp_path.iterdir()] == ["mm-wave"]
