"""The executor reduces the loss once per optimizer step, over micro-batches and processes.

On a variable-length modality each micro-batch scores a different number of
tokens; the step's gradient must still be that of one batch holding all of
them: ``grad_accum=2`` on two halves, or two processes with a half each,
equal one step on the whole batch.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState, GradientState
from loss_reduction_worker import SAMPLES, build_model, samples, step_gradients

HERE = Path(__file__).parent


def fresh_accelerator(**kwargs) -> Accelerator:
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    return Accelerator(cpu=True, **kwargs)


def assert_same_gradients(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.allclose(a[name], b[name], rtol=1e-4, atol=1e-6), name


def per_micro_batch_mean_gradients(style: str, halves: list[list[dict]]) -> dict:
    """What dividing each micro-batch by its own count gives (the reduction this replaces)."""
    model = build_model(style)
    for half in halves:
        (model(model.tokenizer.collate(half)).loss / len(halves)).backward()
    return {name: p.grad for name, p in model.named_parameters()}


@pytest.mark.parametrize("style", ["mae", "bert"])
def test_accumulating_two_halves_equals_one_whole_batch(toy_registry, style):
    data = samples()
    halves = [data[: SAMPLES // 2], data[SAMPLES // 2 :]]
    assert halves[0] and sum(len(s["signal"]) for s in halves[0]) != sum(len(s["signal"]) for s in halves[1])
    whole = step_gradients(fresh_accelerator(), style, [data])
    accumulated = step_gradients(fresh_accelerator(gradient_accumulation_steps=2), style, halves)
    assert_same_gradients(whole, accumulated)
    naive = per_micro_batch_mean_gradients(style, halves)
    assert not all(torch.allclose(naive[k], whole[k], rtol=1e-4, atol=1e-6) for k in whole)  # the test can fail


def test_two_processes_equal_one(toy_registry, tmp_path):
    out = tmp_path / "grads.pt"
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
        "29531",
        str(HERE / "loss_reduction_worker.py"),
        "bert",
        str(out),
    ]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    saved = torch.load(out)
    assert saved["world"] == 2
    whole = step_gradients(fresh_accelerator(), "bert", [samples()])
    assert_same_gradients(whole, saved["grads"])
