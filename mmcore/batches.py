"""Batches that resume exactly: the data order and every sample's own randomness are pure functions of
(seed, epoch, position), so a run resumed from a checkpoint reads what an uninterrupted one would have.

The order comes from ``DistributedSampler(seed, epoch)`` and a batch count per
rank (`DataPosition`, saved in checkpoints). A sample's augmentation (a random
crop, a flip, a window) comes from a ``torch.Generator`` seeded by (seed, epoch,
index) that `SeededSamples` hands to the dataset's ``get(index, generator)``;
datasets without ``get`` are read under the global RNGs seeded the same way,
so a third-party dataset that draws from ``torch.rand`` resumes exactly too.
"""

from __future__ import annotations

from collections.abc import Iterator
import dataclasses
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.data_loader import SkipBatchSampler
from torch.utils.data import BatchSampler, DataLoader, Dataset, DistributedSampler


@dataclass
class DataPosition:
    epoch: int = 0
    batch: int = 0  # batches of this epoch already consumed by this rank
    stream: dict[str, Any] | None = None  # a streamed dataset's loader state (`iterate_stream`), refreshed by `snapshot`
    loader: Any = dataclasses.field(default=None, repr=False, compare=False)

    def snapshot(self) -> dict[str, Any]:
        """What a checkpoint stores for this rank (JSON)."""
        if self.loader is not None:
            self.stream = self.loader.state_dict()
        return {"epoch": self.epoch, "batch": self.batch, **({"stream": self.stream} if self.stream is not None else {})}


def sample_seed(seed: int, epoch: int, index: int) -> int:
    return (seed * 1_000_003 + epoch * 2_654_435_761 + index * 40_503) % (2**63)


def read_sample(dataset: Any, index: int, generator: torch.Generator | None) -> Any:
    """``dataset.get(index, generator)`` where the dataset has it, else ``dataset[index]``."""
    get = getattr(dataset, "get", None)
    return get(index, generator) if callable(get) else dataset[index]


class SeededSamples(Dataset):
    """``dataset`` read by (epoch, index) keys, each sample's randomness seeded by (seed, epoch, index)."""

    def __init__(self, dataset: Any, seed: int) -> None:
        self.dataset, self.seed = dataset, seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> Any:
        epoch, index = key
        seed = sample_seed(self.seed, epoch, index)
        if callable(getattr(self.dataset, "get", None)):
            return self.dataset.get(index, torch.Generator().manual_seed(seed))
        numpy_state = np.random.get_state()
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(seed)
            np.random.seed(seed % 2**32)
            try:
                return self.dataset[index]
            finally:
                np.random.set_state(numpy_state)


class EpochKeys:
    """A batch sampler's batches of indices as batches of (epoch, index) keys for `SeededSamples`."""

    def __init__(self, batches: Any, epoch: int) -> None:
        self.batches, self.epoch = batches, epoch

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for batch in self.batches:
            yield [(self.epoch, index) for index in batch]

    def __len__(self) -> int:
        return len(self.batches)


def iterate_batches(
    dataset, collate, batch_size: int, num_workers: int, seed: int, accelerator: Accelerator, position: DataPosition
) -> Iterator:
    """Endless batches for this rank; ``position`` is kept current for checkpoints."""
    sampler = DistributedSampler(
        dataset, num_replicas=accelerator.num_processes, rank=accelerator.process_index, shuffle=True, seed=seed, drop_last=True
    )
    samples = SeededSamples(dataset, seed)
    while True:
        sampler.set_epoch(position.epoch)
        batches = SkipBatchSampler(BatchSampler(sampler, batch_size, drop_last=True), position.batch)
        loader = DataLoader(
            samples,
            batch_sampler=EpochKeys(batches, position.epoch),
            collate_fn=collate,
            num_workers=num_workers,
            pin_memory=accelerator.device.type == "cuda",
        )
        for batch in loader:
            position.batch += 1
            yield batch
        position.epoch, position.batch = position.epoch + 1, 0


def iterate_stream(
    stream, collate, batch_size: int, num_workers: int, seed: int, accelerator: Accelerator, position: DataPosition
) -> Iterator:
    """Endless batches of a streamed dataset (`mmcore.streams`) for this rank, through torchdata's
    ``StatefulDataLoader``: it keeps each loader worker's stream position with every batch, so
    ``position.snapshot()`` is exactly what this rank has consumed, prefetched batches excluded."""
    from torchdata.stateful_dataloader import StatefulDataLoader

    stream.place(seed, accelerator.process_index, accelerator.num_processes)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "'set_vital' is deprecated")  # torchdata 0.11 on torch ≥ 2.9
        loader = StatefulDataLoader(
            stream,
            batch_size=batch_size,
            collate_fn=collate,
            num_workers=num_workers,
            drop_last=True,
            pin_memory=accelerator.device.type == "cuda",
        )
    if position.stream is not None:
        loader.load_state_dict(position.stream)
    position.loader = loader
    yield from loader
