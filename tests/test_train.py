"""The executor in-process on the toy modality: folder, checkpoints, exact resume."""

import json

import pytest

import mmcore
from mmcore.checkpoint import list_checkpoints
from toy import TOY_RECIPE, train_recipe


@pytest.fixture
def recipe(tmp_path, toy_registry):
    path = tmp_path / "toy.yaml"
    path.write_text(TOY_RECIPE)
    return path


run = train_recipe


def test_run_writes_folder_metrics_and_keeps_last_checkpoints(recipe, tmp_path):
    losses = run(recipe, tmp_path / "run")
    assert sorted(losses) == list(range(1, 9))
    folder = tmp_path / "run" / "model"
    assert {"config.json", "model.safetensors", "README.md"} <= {p.name for p in folder.iterdir()}
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 9)) and rows[0]["train/loss"] > rows[-1]["train/loss"]
    assert [p.name for p in list_checkpoints(tmp_path / "run" / "checkpoints")] == ["step-00000006", "step-00000008"]
    card = (folder / "README.md").read_text()
    assert "library_name: mmcore" in card and "effective batch | 8" in card and "eval_loss" in card
    model = mmcore.from_pretrained(str(folder))
    assert model.config["modality"] == "signal"
    assert model.tokenizer.scale == pytest.approx(1.0, abs=0.01)  # fitted on the training split, restored from config.json


@pytest.mark.parametrize("grad_accum", [1, 2])
def test_resume_reproduces_the_uninterrupted_losses(recipe, tmp_path, grad_accum):
    full = run(recipe, tmp_path / "full", **{"train.grad_accum": grad_accum})
    partial = run(recipe, tmp_path / "cut", kill_at=5, **{"train.grad_accum": grad_accum})  # after the step-3 checkpoint
    assert max(partial) == 5 and not (tmp_path / "cut" / "model").exists()  # no half-written model folder
    resumed = run(recipe, tmp_path / "cut", resume=True, **{"train.grad_accum": grad_accum})
    assert sorted(resumed) == [4, 5, 6, 7, 8]
    for step in resumed:
        assert resumed[step] == pytest.approx(full[step], rel=1e-6, abs=1e-7), step


def test_damaged_checkpoint_falls_back_to_the_previous(recipe, tmp_path):
    run(recipe, tmp_path / "run", kill_at=7)  # checkpoints at 3 and 6
    newest = tmp_path / "run" / "checkpoints" / "step-00000006"
    (newest / "model.safetensors").write_bytes(b"not a safetensors file")
    resumed = run(recipe, tmp_path / "run", resume=True)
    assert min(resumed) == 4  # step 6 was damaged: resumed from step 3


def test_a_failed_run_leaves_no_model_folder(recipe, tmp_path, monkeypatch):
    import mmcore.executor as train_module

    def broken_card(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(train_module, "render_card", broken_card)
    with pytest.raises(OSError, match="disk full"):
        run(recipe, tmp_path / "run")
    assert not (tmp_path / "run" / "model").exists()
    assert not [p for p in (tmp_path / "run").iterdir() if p.name.startswith(".model")]


def test_epochs_set_the_steps_from_the_training_samples(recipe, tmp_path):
    losses = run(recipe, tmp_path / "run", **{"train.epochs": 1.5})  # 48 samples, batch 8: 6 steps a pass
    assert sorted(losses) == list(range(1, 10))
    card = (tmp_path / "run" / "model" / "README.md").read_text()
    assert "| steps | 9 |" in card and "  epochs: 1.5" in card  # the recipe it records says both


def test_epochs_refuse_a_stream_of_unknown_length(tmp_path):
    from mmcore.errors import ConfigError
    from mmcore.executor import steps_for_epochs
    from mmcore.streams import RecordStream, TarShards

    import tarfile

    with tarfile.open(tmp_path / "train-0.tar", "w"):
        pass
    stream = RecordStream(TarShards(str(tmp_path / "train-0.tar")), lambda record, generator: record, 4, "raise", {})
    with pytest.raises(ConfigError, match="train.epochs .* a stream has none: set train.steps"):
        steps_for_epochs(2.0, stream, 8)
    assert steps_for_epochs(2.0, list(range(50)), 8) == 13  # ceil(100 / 8)
