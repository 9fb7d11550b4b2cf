"""Gradients of one optimizer step through the executor's `accumulate_gradients`, on the toy modality.

Imported by tests/test_loss_reduction.py, and run by it under
``accelerate launch --num_processes 2`` as a script: each rank takes its
share of the same eight variable-length samples and rank 0 saves the
globally reduced gradients.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from accelerate import Accelerator

sys.path.insert(0, str(Path(__file__).parent))

from toy import SignalTokenizer, ToyPlugin, Waves, toy_config

from mmcore import hookimpl

SAMPLES = 8


@dataclass
class FirstOfValid:
    """Hides the first ``round(ratio * valid_length)`` tokens of each sample: no randomness, so a sample's
    mask is the same whichever batch, micro-batch or process it lands in."""

    ratio: float = 0.5

    def num_hidden(self, num_tokens):
        return int(round(self.ratio * num_tokens))

    def __call__(self, tokens, generator=None, scores=None):
        valid = tokens.valid if tokens.valid is not None else torch.ones(tokens.values.shape[:2], dtype=torch.bool)
        budget = (valid.sum(dim=1, keepdim=True).to(torch.float32) * self.ratio).round()
        return (valid.cumsum(dim=1) <= budget) & valid


class FirstOfValidPlugin:
    @hookimpl
    def register_masking_policies(self, register):
        register("signal", "first_of_valid", FirstOfValid)


def samples() -> list[dict]:
    return Waves(num_train=SAMPLES).build(SignalTokenizer(), "train")


def build_model(style: str):
    from mmcore.model import MaskedModel
    from mmcore.plugins import get_registry

    registry = get_registry()
    if "toy" not in registry.plugins:
        registry.add_plugin(ToyPlugin(), "toy")
    if "first-of-valid" not in registry.plugins:
        registry.add_plugin(FirstOfValidPlugin(), "first-of-valid")
    torch.manual_seed(0)
    return MaskedModel(toy_config(style, "first_of_valid"))


def step_gradients(accelerator: Accelerator, style: str, micro: list[list[dict]]) -> dict[str, torch.Tensor]:
    """{parameter: gradient} after one step over the micro-batches ``micro`` (this process's share)."""
    from mmcore.executor import LossReducer, accumulate_gradients

    model = build_model(style)
    model = accelerator.prepare(model)
    batches = ((model_tokenizer(model, accelerator).collate(m), None) for m in micro)
    accumulate_gradients(accelerator, model, LossReducer({}, accelerator.device), batches)
    return {name: p.grad.detach().clone() for name, p in accelerator.unwrap_model(model).named_parameters()}


def model_tokenizer(model, accelerator):
    return accelerator.unwrap_model(model).tokenizer


def main(style: str, out: str) -> None:
    accelerator = Accelerator(cpu=True)
    rank, world = accelerator.process_index, accelerator.num_processes
    share = SAMPLES // world
    grads = step_gradients(accelerator, style, [samples()[rank * share : (rank + 1) * share]])
    if accelerator.is_main_process:
        torch.save({"world": world, "grads": grads}, out)
    accelerator.wait_for_everyone()
    accelerator.end_training()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
