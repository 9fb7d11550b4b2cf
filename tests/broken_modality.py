"""A deliberately broken modality for the conformance suite: the toy signal modality with defects
switched on by name through a tokenizer option, ``{"defects": ["host_sync", ...]}``.

With no defects it is a correct modality; each defect is one a third party could ship unnoticed:

* ``host_sync``:       ``tokenize`` reads a device value back (a finiteness test with ``bool()``);
* ``front_padding``:   ``collate`` pads at the front, so positions shift with the batch;
* ``no_positions``:    every token gets position 0;
* ``zero_detokenize``: ``detokenize`` returns zeros;
* ``hides_too_few``:   the policy hides ``floor(ratio × valid length)`` while ``num_hidden`` rounds, so
  a full-length sample leaves more tokens visible than the MAE encoder has slots.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from toy import Identity, SignalEmbedder, SignalHead, SignalTokenizer, Waves

from mmcore import Modality, Tokens, hookimpl
from mmcore.masking import uniform_noise

DEFECTS = ("host_sync", "front_padding", "no_positions", "zero_detokenize", "hides_too_few")


@dataclass
class BrokenTokenizer(SignalTokenizer):
    defects: list[str] = field(default_factory=list)

    def collate(self, samples):
        n = max(len(s["signal"]) for s in samples)
        values = torch.zeros(len(samples), n)
        valid = torch.zeros(len(samples), n, dtype=torch.bool)
        for i, s in enumerate(samples):
            at = slice(n - len(s["signal"]), n) if "front_padding" in self.defects else slice(0, len(s["signal"]))
            values[i, at], valid[i, at] = s["signal"], True
        batch = {"values": values}
        if not valid.all():  # decided here on the CPU, not in tokenize
            batch["valid"] = valid
        return batch

    def tokenize(self, batch):
        values = batch["values"][..., None] / (self.scale or 1.0)
        if "host_sync" in self.defects and bool(values.isnan().any()):
            raise ValueError("NaN in the signal")
        positions = torch.arange(values.shape[1], device=values.device)[None, :, None]
        if "no_positions" in self.defects:
            positions = torch.zeros_like(positions)
        return Tokens(values, positions, batch.get("valid"), {"defects": self.defects})

    def detokenize(self, values, tokens):
        return torch.zeros_like(values[..., 0]) if "zero_detokenize" in self.defects else values[..., 0]


@dataclass
class BrokenRandom:
    """``round(ratio × valid length)`` random valid tokens per sample, as `mmcore.masking.hide_fraction_of_valid`."""

    ratio: float = 0.6  # not 0.5: floor and round then differ for 16 tokens

    def num_hidden(self, num_tokens):
        return round(self.ratio * num_tokens)

    def __call__(self, tokens, generator=None, scores=None):
        B, N = tokens.batch_size, tokens.num_tokens
        valid = tokens.valid if tokens.valid is not None else torch.ones(B, N, dtype=torch.bool)
        noise = uniform_noise((B, N), tokens.values.device, generator).masked_fill(~valid, 2.0)
        budget = valid.sum(1, keepdim=True) * self.ratio
        budget = budget.floor() if "hides_too_few" in tokens.meta["defects"] else budget.round()
        return (noise.argsort(1).argsort(1) < budget) & valid


class BrokenPlugin:
    """Registered directly with ``Registry.add_plugin`` in tests, as `toy.ToyPlugin`."""

    @hookimpl
    def register_modalities(self, register):
        register(
            Modality(
                name="broken",
                tokenizer=BrokenTokenizer,
                embedder=SignalEmbedder,
                head=SignalHead,
                default_policy="random",
                default_target="identity",
                style="mae",
            )
        )

    @hookimpl
    def register_masking_policies(self, register):
        register("broken", "random", BrokenRandom)

    @hookimpl
    def register_targets(self, register):
        register("broken", "identity", Identity)


def broken_samples(n=6):
    """Signals of different lengths (4 to 16): padded batches."""
    return Waves(num_train=n).build(BrokenTokenizer(), "train")
