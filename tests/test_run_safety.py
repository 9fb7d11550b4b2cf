"""Runs that never lose work: the run folder, its lock, checkpoint integrity, a full disk, divergence,
workers that die with their launcher, and exact resume of a dataset that draws from the global RNG."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from safetensors.torch import load_file

from mmcore.checkpoint import damaged, list_checkpoints
from mmcore.errors import ConfigError, DivergedError
from mmcore.run_folder import RunLock
from toy import TOY_RECIPE, train_recipe

HERE = Path(__file__).parent
WORKER = HERE / "mm_worker.py"


@pytest.fixture
def recipe(tmp_path, toy_registry):
    path = tmp_path / "toy.yaml"
    path.write_text(TOY_RECIPE.replace("keep_checkpoints: 2", "keep_checkpoints: 3"))
    return path


run = train_recipe


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def worker(*args, env_extra=None, **kwargs):
    env = dict(os.environ, OMP_NUM_THREADS="1", ACCELERATE_USE_CPU="true", **(env_extra or {}))
    return subprocess.run([sys.executable, str(WORKER), *map(str, args)], env=env, capture_output=True, text=True, timeout=240, **kwargs)


# -- 1. --resume never destroys work ------------------------------------------------------


def test_resume_with_no_intact_checkpoint_stops_and_keeps_every_file(recipe, tmp_path):
    run(recipe, tmp_path / "run", kill_at=7)  # checkpoints at 3 and 6
    for ckpt in list_checkpoints(tmp_path / "run" / "checkpoints"):
        (ckpt / "model.safetensors").write_bytes(b"damaged")
    before = snapshot(tmp_path / "run")
    with pytest.raises(ConfigError, match="no checkpoint under .* is intact.*nothing was changed"):
        run(recipe, tmp_path / "run", resume=True)
    assert snapshot(tmp_path / "run") == before


def test_a_checkpoint_of_another_recipe_is_refused_naming_the_keys(recipe, tmp_path):
    run(recipe, tmp_path / "run", kill_at=4)
    before = snapshot(tmp_path / "run")
    with pytest.raises(ConfigError, match=r"model\.encoder\.depth is 2 there, 4 here") as info:
        run(recipe, tmp_path / "run", resume=True, **{"model.encoder.depth": 4})
    assert "damaged" not in str(info.value)
    with pytest.raises(ConfigError, match=r"data\.batch_size is 8 there, 4 here"):
        run(recipe, tmp_path / "run", resume=True, **{"data.batch_size": 4})
    assert snapshot(tmp_path / "run") == before


def test_a_checkpoint_of_another_process_count_is_refused(recipe, tmp_path):
    run(recipe, tmp_path / "run", kill_at=4)
    state_file = list_checkpoints(tmp_path / "run" / "checkpoints")[-1] / "trainer_state.json"
    state = json.loads(state_file.read_text())
    state["data"] = state["data"] * 2  # as a 2-process run writes it
    state_file.write_text(json.dumps(state))
    with pytest.raises(ConfigError, match="written by 2 processes, this run has 1.*--num_processes 2"):
        run(recipe, tmp_path / "run", resume=True)


def test_fresh_run_refuses_a_folder_with_a_run_and_overwrite_moves_it_aside(recipe, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")  # a file mmcore did not create
    first = run(recipe, out)
    old = snapshot(out / "model")
    with pytest.raises(ConfigError, match="already holds a run .*--resume.*--overwrite"):
        run(recipe, out)
    assert snapshot(out / "model") == old
    second = run(recipe, out, overwrite=True)
    assert second == first  # same recipe, same seed
    moved = list((out / ".previous").iterdir())
    assert len(moved) == 1 and snapshot(moved[0] / "model") == old
    assert (out / "notes.txt").read_text() == "mine"
    with pytest.raises(ConfigError, match="choose one"):
        run(recipe, out, resume=True, overwrite=True)


def test_resume_in_an_empty_folder_starts_and_one_without_checkpoints_refuses(recipe, tmp_path):
    assert sorted(run(recipe, tmp_path / "new", resume=True)) == list(range(1, 9))
    run(recipe, tmp_path / "early", kill_at=2)  # no checkpoint yet, metrics written
    with pytest.raises(ConfigError, match="no checkpoint .*--overwrite"):
        run(recipe, tmp_path / "early", resume=True)


# -- 2. one run per folder --------------------------------------------------------------------


def test_a_second_run_into_a_locked_folder_is_refused_and_a_dead_holders_lock_taken_over(recipe, tmp_path):
    out = tmp_path / "run"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; "
            "from mmcore.run_folder import RunLock; RunLock(Path(sys.argv[1])).acquire(); "
            "print('held', flush=True); time.sleep(600)",
            str(out),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(ConfigError, match=f"in use by process {holder.pid} "):
            run(recipe, out, resume=True)
        assert not (out / "checkpoints").exists()
    finally:
        holder.kill()
        holder.wait()
    assert sorted(run(recipe, out, resume=True)) == list(range(1, 9))  # the killed holder's lock is taken over
    assert not (out / ".mmcore-run.lock").exists()  # released at the end


def test_lock_names_its_holder_and_is_released(tmp_path):
    lock = RunLock(tmp_path)
    assert lock.acquire() is None
    with pytest.raises(ConfigError, match=f"in use by process {os.getpid()}"):
        RunLock(tmp_path).acquire()
    lock.release()
    assert RunLock(tmp_path).acquire() is None


# -- 3. checkpoint integrity -----------------------------------------------------------------


@pytest.mark.parametrize("name", ["optimizer.bin", "model.safetensors"])
def test_a_flipped_byte_is_detected_and_the_previous_checkpoint_used(recipe, tmp_path, capsys, name):
    full = run(recipe, tmp_path / "full")
    run(recipe, tmp_path / "run", kill_at=7)
    newest = list_checkpoints(tmp_path / "run" / "checkpoints")[-1]
    data = bytearray((newest / name).read_bytes())
    data[-5] ^= 0x10  # inside the tensor data: the header still parses, the file still loads
    (newest / name).write_bytes(bytes(data))
    assert damaged(newest) == f"{name} does not match its checksum (changed since it was written)"
    resumed = run(recipe, tmp_path / "run", resume=True)
    assert f"{newest} is damaged: {name}" in capsys.readouterr().out
    assert min(resumed) == 4 and all(resumed[s] == full[s] for s in resumed)


def test_a_torn_metrics_line_does_not_stop_resume(recipe, tmp_path):
    full = run(recipe, tmp_path / "full")
    run(recipe, tmp_path / "run", kill_at=5)
    with (tmp_path / "run" / "metrics.jsonl").open("a") as f:
        f.write('{"step": 6, "train/lo')  # a kill mid-append
    with pytest.warns(UserWarning, match="torn line"):
        resumed = run(recipe, tmp_path / "run", resume=True)
    assert all(resumed[s] == full[s] for s in resumed)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 9))


def test_a_full_disk_during_a_checkpoint_leaves_the_previous_one_intact(recipe, tmp_path):
    run(recipe, tmp_path / "run", kill_at=4)  # step-3 written
    before = snapshot(tmp_path / "run" / "checkpoints")
    # a real failing write: the resumed process may not grow any file past 20 kB (its checkpoint needs more)
    result = worker("--max-file-bytes=20000", "train", recipe, f"output_dir={tmp_path / 'run'}", "--resume")
    assert result.returncode == 2, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("mm: error: disk full while writing checkpoint") and "step-00000006" in last, last
    assert "Traceback" not in result.stderr
    assert snapshot(tmp_path / "run" / "checkpoints") == before  # no partial .tmp-step, step-3 untouched
    resumed = run(recipe, tmp_path / "run", resume=True)
    assert min(resumed) == 4 and (tmp_path / "run" / "model").is_dir()


def test_a_full_disk_while_writing_the_model_folder_keeps_the_old_one(recipe, tmp_path, monkeypatch):
    import errno

    import mmcore.executor as train_module

    run(recipe, tmp_path / "run")
    old = snapshot(tmp_path / "run" / "model")

    def full_disk(model, folder, info):
        (folder / "model.safetensors").write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device", str(folder / "model.safetensors"))

    monkeypatch.setattr(train_module.MaskedModel, "save_pretrained", lambda self, folder: full_disk(self, folder, {}))
    from mmcore.errors import StorageError

    with pytest.raises(StorageError, match="disk full while writing the model folder .*No space left on device"):
        run(recipe, tmp_path / "run", resume=True, **{"train.steps": 10})
    assert snapshot(tmp_path / "run" / "model") == old
    assert not [p for p in (tmp_path / "run").iterdir() if p.name.startswith(".model")]


# -- 5. numerics -----------------------------------------------------------------------------


def test_a_diverging_run_stops_keeps_its_last_good_checkpoint_and_writes_no_model(recipe, tmp_path):
    with pytest.raises(DivergedError, match="non-finite") as info:
        run(recipe, tmp_path / "run", **{"train.base_lr": 1e12, "train.steps": 40, "train.max_nonfinite_steps": 3, "train.warmup_steps": 0})
    assert "lower train.base_lr" in str(info.value)
    assert not (tmp_path / "run" / "model").exists()
    for ckpt in list_checkpoints(tmp_path / "run" / "checkpoints"):
        assert all(t.isfinite().all() for t in load_file(ckpt / "model.safetensors").values())


# -- 4. processes that stop together -------------------------------------------------------------


def test_workers_end_when_their_launcher_is_killed(recipe, tmp_path):
    out = tmp_path / "run"
    env = dict(os.environ, ACCELERATE_USE_CPU="true", OMP_NUM_THREADS="1", PYTHONPATH=str(HERE))
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
        "29533",
        str(WORKER),
        "train",
        str(recipe),
        f"output_dir={out}",
        "train.steps=100000",
        "train.checkpoint_every=5",
    ]
    launcher = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 180
        while not list_checkpoints(out / "checkpoints") and time.time() < deadline:
            time.sleep(0.5)
        assert list_checkpoints(out / "checkpoints"), "the 2-process run wrote no checkpoint"
        workers = psutil.Process(launcher.pid).children(recursive=True)
        assert len(workers) >= 2
    finally:
        launcher.send_signal(signal.SIGKILL)
        launcher.wait()
    gone, alive = psutil.wait_procs(workers, timeout=10)
    for p in alive:
        p.kill()
    assert not alive, f"orphaned workers still running: {[p.pid for p in alive]}"
    # resuming its 2-process checkpoint with 1 process is refused in one line
    with pytest.raises(ConfigError, match="written by 2 processes, this run has 1"):
        run(recipe, out, resume=True)


# -- 9. exact resume when the dataset draws its own randomness ------------------------------------


def test_a_dataset_drawing_from_the_global_rng_resumes_exactly(recipe, tmp_path):
    options = {"data.dataset.name": "noisy_waves"}
    full = run(recipe, tmp_path / "full", **options)
    again = run(recipe, tmp_path / "again", **options)
    assert again == full
    run(recipe, tmp_path / "cut", kill_at=5, **options)
    resumed = run(recipe, tmp_path / "cut", resume=True, **options)
    assert sorted(resumed) == [4, 5, 6, 7, 8] and all(resumed[s] == full[s] for s in resumed)
    without_noise = run(recipe, tmp_path / "plain")
    assert without_noise[8] != full[8]  # the noise is really drawn: the test can fail
