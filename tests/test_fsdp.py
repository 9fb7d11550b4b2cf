"""FSDP (recipes/accelerate/fsdp.yaml) on two CPU processes.

Accelerate 1.15 enables FSDP only on GPUs: with ``cpu=True`` it picks MULTI_CPU and drops the FSDP plugin, so
the config would silently train with DDP; mmcore refuses that in one line (first test). torch's FSDP2 itself
runs on the CPU with gloo, so the other tests lift Accelerate's restriction in the worker (run as a script,
this file is ``mm_worker.py`` with Accelerate's state set to FSDP) and exercise the executor's FSDP paths for
real: sharded training and checkpoints, the gathered model folder, evaluation on a full copy, resume.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

HERE = Path(__file__).parent
ROOT = HERE.parent
FSDP_CONFIG = ROOT / "recipes" / "accelerate" / "fsdp.yaml"
STEPS = ["train.steps=8", "train.checkpoint_every=3", "train.picture_every=4", "data.eval_batches=2"]


def force_fsdp_on_cpu() -> None:
    """Make the executor's Accelerator use FSDP although the device is the CPU (what Accelerate refuses)."""
    import accelerate
    from accelerate.state import PartialState
    from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

    import mmcore.executor

    class FSDPOnCPU(accelerate.Accelerator):
        def __init__(self, *args, **kwargs):
            plugin = FullyShardedDataParallelPlugin()  # from the launcher's FSDP_* variables (the config file)
            super().__init__(*args, fsdp_plugin=plugin, **kwargs)
            PartialState().distributed_type = self.state.distributed_type = DistributedType.FSDP
            self.state.fsdp_plugin = plugin

    mmcore.executor.Accelerator = FSDPOnCPU


def launch(recipe, out, *options, fsdp=True, force=True, resume=False, port=29560):
    config = ["--config_file", str(FSDP_CONFIG)] if fsdp else ["--multi_gpu", "--num_machines", "1"]
    script = Path(__file__) if fsdp and force else HERE / "mm_worker.py"
    cmd = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        *config,
        "--num_processes",
        "2",
        "--mixed_precision",
        "no",
        "--main_process_port",
        str(port),
        str(script),
        *options,
        "train",
        str(recipe),
        f"output_dir={out}",
        *STEPS,
        *(["--resume"] if resume else []),
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1", ACCELERATE_USE_CPU="true", PYTHONPATH=str(HERE), HF_HUB_OFFLINE="1")
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=False)


def losses(out):
    return {r["step"]: r["train/loss"] for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())}


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    from toy import TOY_RECIPE

    path = tmp_path_factory.mktemp("recipe") / "toy.yaml"
    path.write_text(TOY_RECIPE)
    return path


def test_the_fsdp_config_on_a_cpu_machine_is_refused_in_one_line(recipe, tmp_path):
    result = launch(recipe, tmp_path / "run", force=False, port=29561)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if "asks for FSDP" in line]
    assert lines and "Accelerate runs FSDP on GPUs only" in lines[0] and "cpu-2proc.yaml" in lines[0], result.stderr[-3000:]
    assert not (tmp_path / "run").exists()  # refused before the run folder is touched


@pytest.fixture(scope="module")
def runs(recipe, tmp_path_factory):
    """The same recipe trained with DDP and with FSDP, each on 2 CPU processes."""
    root = tmp_path_factory.mktemp("fsdp")
    ddp = launch(recipe, root / "ddp", fsdp=False, port=29562)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    fsdp = launch(recipe, root / "fsdp", port=29563)
    assert fsdp.returncode == 0, fsdp.stderr[-3000:]
    return root


def test_fsdp_trains_sharded_and_writes_the_full_model(runs, toy_registry):
    from mmcore.model import ModelFolder

    ddp, fsdp = runs / "ddp", runs / "fsdp"
    ranks = json.loads((fsdp / "ranks.json").read_text())
    assert ranks["sharded"] and ranks["world_size"] == 2 and len(ranks["parameter_sha256"]) == 1
    checkpoint = fsdp / "checkpoints" / "step-00000008"
    assert (checkpoint / "pytorch_model_fsdp_0").is_dir() and not (checkpoint / "model.safetensors").exists()
    # FSDP computes what DDP does: the same losses and weights, up to float summation order
    assert losses(fsdp).keys() == losses(ddp).keys()
    for step, loss in losses(ddp).items():
        assert losses(fsdp)[step] == pytest.approx(loss, rel=1e-4, abs=1e-6)
    sharded, replicated = load_file(fsdp / "model" / "model.safetensors"), load_file(ddp / "model" / "model.safetensors")
    assert sharded.keys() == replicated.keys()
    for key in replicated:
        torch.testing.assert_close(sharded[key], replicated[key], rtol=1e-4, atol=1e-5)
    model = ModelFolder.from_pretrained(fsdp / "model")  # loads strictly: every tensor whole
    assert sum(p.numel() for p in model.parameters()) == sum(t.numel() for t in sharded.values())
    card = (fsdp / "model" / "README.md").read_text()
    assert "eval_loss" in card or "eval loss" in card.lower()


def test_fsdp_resumes_from_its_sharded_checkpoint(runs, recipe):
    out = runs / "cut"
    killed = launch(recipe, out, "--kill-at-step=5", port=29564)
    assert killed.returncode != 0 and max(losses(out)) == 5
    resumed = launch(recipe, out, resume=True, port=29565)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from" in resumed.stdout and "step-00000003" in resumed.stdout
    assert losses(out) == losses(runs / "fsdp")  # exactly: the sharded state reloads bit for bit


if __name__ == "__main__":
    import runpy

    force_fsdp_on_cpu()
    runpy.run_path(str(HERE / "mm_worker.py"), run_name="__main__")
