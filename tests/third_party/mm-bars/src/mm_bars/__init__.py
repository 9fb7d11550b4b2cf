"""mm-bars: a third party's modality, written against mmcore's public contract only.

A digit d is a row of ``length`` cells, the first d lit (1.0) and the rest dark,
plus a little noise; one token per cell. It exists to show that an outside
plugin joins a joint (multimodal) recipe beside shipped plugins without any
change to mmcore or to them: tests/test_third_party_joint.py installs it as
its own distribution and trains it with mm-image and mm-text.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mmcore import Modality, Tokens, hookimpl
from mmcore.continuous import PatchEmbedder, PatchTarget, RandomMasking, RegressionHead


@dataclass
class BarTokenizer:
    length: int = 10

    @property
    def patch_dim(self) -> int:
        return 1

    def collate(self, samples):
        return {"bars": torch.stack([s["bars"] for s in samples]).to(torch.float32)}  # [B, length]

    def tokenize(self, batch):
        bars = batch["bars"]
        positions = torch.arange(bars.shape[1], device=bars.device, dtype=torch.float32)[None, :, None]
        return Tokens(bars[..., None], positions)

    def detokenize(self, values, tokens):
        return values[..., 0]

    def placeholder(self, length=None):
        return {"bars": torch.zeros(self.length)}


class BarEmbedder(PatchEmbedder):
    axes = 1


@dataclass
class Bars:
    """``per_label`` noisy bars of each digit 0-9, seeded by split."""

    per_label: int = 20
    noise: float = 0.05

    def build(self, tokenizer, split):
        g = torch.Generator().manual_seed(0 if split == "train" else 1)
        items = []
        for digit in range(10):
            for _ in range(self.per_label if split == "train" else max(1, self.per_label // 5)):
                bar = (torch.arange(tokenizer.length) < digit).to(torch.float32)
                items.append({"bars": bar + self.noise * torch.randn(tokenizer.length, generator=g), "label": digit})
        return items


@dataclass
class BarTarget(PatchTarget):
    norm_pix: bool = False


@hookimpl
def register_modalities(register):
    register(
        Modality(
            name="bars",
            tokenizer=BarTokenizer,
            embedder=BarEmbedder,
            head=RegressionHead,
            default_policy="random",
            default_target="cells",
            style="mae",
            description="A digit as a bar of lit cells (a third party's test modality).",
        )
    )


@hookimpl
def register_masking_policies(register):
    register("bars", "random", RandomMasking)


@hookimpl
def register_targets(register):
    register("bars", "cells", BarTarget)


@hookimpl
def register_datasets(register):
    register("bars", "bars", Bars)
