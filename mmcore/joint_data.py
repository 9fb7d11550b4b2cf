"""Paired samples for joint models, from each modality plugin's own datasets.

The core pairs datasets it knows nothing about: each stream names one of its
plugin's datasets (``data.dataset.modalities.<stream>``), and samples are
paired by their ``label`` (a digit's picture, its spoken name and its word)
or by position. The first stream is the anchor: one paired sample per anchor
sample; the partner of another stream is drawn, seeded, among its samples of
the same label, and is None where it has none (that modality is then void
for the sample, see `mmcore.joint`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import Dataset

from mmcore.batches import read_sample
from mmcore.errors import ConfigError, DataError
from mmcore.model import build_part
from mmcore.plugins import get_registry

PAIR_BY = ("label", "index")


@dataclass
class PairedDatasets:
    """Options of ``data.dataset`` in a joint recipe."""

    name: str = "paired"
    modalities: Any = field(default_factory=dict)  # {stream: {name: dataset, **options}}, typed per plugin
    by: str = "label"  # label: partners share the anchor's label; index: the i-th sample of each
    seed: int = 0  # which same-label partner is drawn

    def build(self, tokenizers: dict[str, Any], modalities: dict[str, str], split: str) -> PairedSamples:
        """One dataset per stream through its plugin, paired; ``modalities`` maps stream → plugin modality."""
        if self.by not in PAIR_BY:
            raise ConfigError(f"data.dataset.by {self.by!r} is unknown; accepted: {', '.join(PAIR_BY)}")
        missing = [s for s in tokenizers if s not in (self.modalities or {})]
        if missing:
            raise ConfigError(
                f"data.dataset.modalities lacks {missing}; accepted: one dataset per modality of model.modalities ({', '.join(tokenizers)})"
            )
        registry = get_registry()
        parts = {
            stream: build_part(registry.dataset, modalities[stream], dict(self.modalities[stream])).build(tok, split)
            for stream, tok in tokenizers.items()
        }
        return PairedSamples(parts, self.by, self.seed + (0 if split == "train" else 1))


class PairedSamples(Dataset):
    """Items ``{stream: item or None, "label": anchor label}``; ``parts[stream]`` is each stream's own dataset
    (tokenizers fit on it)."""

    def __init__(self, parts: dict[str, Any], by: str, seed: int) -> None:
        self.parts, self.by, self.seed = parts, by, seed
        self.streams = list(parts)
        anchor = parts[self.streams[0]]
        self.labels = [label_of(anchor, i, self.streams[0]) for i in range(len(anchor))] if by == "label" else None
        self.by_label = {s: group_by_label(parts[s], s) for s in self.streams[1:]} if by == "label" else {}

    def __len__(self) -> int:
        return len(self.parts[self.streams[0]])

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.get(i, None)

    def get(self, i: int, generator: torch.Generator | None) -> dict[str, Any]:
        """Item ``i``; each stream's own per-sample randomness drawn from ``generator`` (`mmcore.batches`)."""
        anchor = self.streams[0]
        item: dict[str, Any] = {anchor: read_sample(self.parts[anchor], i, generator)}
        rng = random.Random(self.seed * 1_000_003 + i)
        for stream in self.streams[1:]:
            if self.by == "index":
                part = self.parts[stream]
                item[stream] = read_sample(part, i, generator) if i < len(part) else None
            else:
                choices = self.by_label[stream].get(self.labels[i], [])
                item[stream] = read_sample(self.parts[stream], rng.choice(choices), generator) if choices else None
        item["label"] = self.labels[i] if self.labels is not None else label_of(self.parts[anchor], i, anchor)
        return item


def label_of(dataset: Any, i: int, stream: str) -> int:
    item = dataset[i]
    if not isinstance(item, dict) or "label" not in item:
        raise DataError(
            f"data.dataset.modalities.{stream}: item {i} has no 'label', which pairing by label needs; "
            "accepted: a dataset whose items carry a label, or data.dataset.by=index"
        )
    return int(item["label"])


def group_by_label(dataset: Any, stream: str) -> dict[int, list[int]]:
    groups: dict[int, list[int]] = {}
    for i in range(len(dataset)):
        groups.setdefault(label_of(dataset, i, stream), []).append(i)
    return groups
