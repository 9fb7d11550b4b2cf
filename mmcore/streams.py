"""Streamed datasets: records read shard by shard through an existing engine, spread over ranks and
loader workers, shuffled in a seeded buffer, and made into samples by the modality's ``from_record``.

Two engines read the shards: Hugging Face ``datasets`` (``data.dataset.name=hf``: local parquet, arrow,
csv or json files, ``imagefolder``/``audiofolder`` folders, a Hub dataset in the local cache; streaming,
decoding off) and ``webdataset`` tar shards (``data.dataset.name=webdataset``). Every modality whose plugin
sets `mmcore.Modality.from_record` gets both, with no code of its own.

mmcore owns the order, so that it can be saved and resumed exactly (the engines' own shuffle buffers are
lost on resume). Each epoch the shards are permuted by (seed, epoch) and dealt to the *slots* (rank ×
loader worker): slot ``s`` of ``S`` reads shards ``s, s + S, ...`` of the permutation. With fewer shards
than slots every slot reads every shard and keeps every ``S``-th record instead (slower, never idle).
Slots that get one shard more than others start their next epoch later; the stream is endless and the
run counts steps, so no rank ever waits at an epoch's end. Records pass through a buffer of
``buffer_size`` from which each sample is drawn at random by (seed, draw number). The position — epoch,
shard, record offset, the buffer as (shard, offset) keys, the number of draws — is a few numbers per
worker; checkpoints store it (through torchdata's ``StatefulDataLoader``) and a resumed stream re-reads
the buffered records and continues where it stopped. A sample's own randomness comes from a generator
seeded by (seed, epoch, shard, offset).

Bad data: ``on_error=raise`` stops at the first unusable record, naming its shard, offset and key;
``on_error=skip`` skips it (or the unreadable rest of a damaged shard) and counts it in a warning.
"""

from __future__ import annotations

import functools
import glob
import random
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from mmcore.errors import ConfigError, DataError

STREAMED = ("hf", "webdataset")
ON_ERROR = ("raise", "skip")
FIT_RECORDS = 4096  # samples a tokenizer with statistics (`fit`) sees from the head of a stream


def _seed(*parts: int) -> int:
    value = 0x5EED
    for part in parts:
        value = (value * 1_000_003 + part * 2_654_435_761 + 7) % (2**63)
    return value


# -- the engines: shards of records --------------------------------------------------------


class HuggingFaceShards:
    """The shards of ``datasets.load_dataset(path, config, data_files=..., split=..., streaming=True)``."""

    def __init__(self, path: str, config: str | None, data_files: Any, split: str, data_dir: str | None = None) -> None:
        try:
            import datasets
        except ImportError:
            raise ConfigError("data.dataset.name=hf needs the datasets package: pip install 'mmcore[stream]'") from None
        files = _plain(data_files)
        path = cached_hub_dataset(path) or path
        try:
            stream = datasets.load_dataset(path, config, data_dir=data_dir, data_files=files, split=split, streaming=True)
        except (FileNotFoundError, ValueError) as exc:
            where = f"data_dir={data_dir}" if data_dir else f"data_files={files}"
            raise DataError(
                f"data.dataset: datasets cannot open {path!r} ({where}, split={split!r}): {' '.join(str(exc).split())[:300]}"
            ) from None
        self.stream = stream.decode(False)  # records stay encoded: small in the buffer, decoded by the plugin
        self.count = self.stream.n_shards
        found = getattr(self.stream._ex_iterable, "kwargs", {}).get("files")
        self.names = (
            [str(f) for f in found]
            if isinstance(found, list) and len(found) == self.count
            else [f"{path} shard {i} of {self.count}" for i in range(self.count)]
        )

    def read(self, index: int) -> Iterator[dict[str, Any]]:
        # .iter(), not iter(): inside a loader worker datasets would deal the one shard to worker 0 only
        for batch in self.stream.shard(num_shards=self.count, index=index, contiguous=True).iter(batch_size=256):
            columns = list(batch)
            for row in range(len(batch[columns[0]]) if columns else 0):
                yield {c: batch[c][row] for c in columns}


def cached_hub_dataset(path: str) -> str | None:
    """The local snapshot folder of a Hub dataset id (``user/name``) already in the Hub cache, else None:
    datasets itself would ask the Hub first, which fails offline (``HF_HUB_OFFLINE=1``)."""
    if path.count("/") != 1 or Path(path).exists():
        return None
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    try:
        return snapshot_download(path, repo_type="dataset", local_files_only=True)
    except (LocalEntryNotFoundError, HFValidationError, OSError):
        return None


class TarShards:
    """webdataset tar shards: one record per key, members named ``key.ext`` (``000017.png``, ``000017.cls``)."""

    def __init__(self, urls: Any) -> None:
        try:
            from webdataset.shardlists import expand_urls
        except ImportError:
            raise ConfigError("data.dataset.name=webdataset needs webdataset: pip install 'mmcore[stream]'") from None
        patterns = [urls] if isinstance(urls, str) else list(_plain(urls) or [])
        names = []
        for pattern in patterns:
            for url in expand_urls(str(pattern)):
                names.extend(sorted(glob.glob(url)) if any(c in url for c in "*?[") else [url])
        missing = [n for n in names if "://" not in n and not Path(n).is_file()]
        if not names or missing:
            raise DataError(
                f"data.dataset.urls: {'no shard matches ' + repr(urls) if not names else 'no such shard ' + missing[0]}"
                f"; accepted: tar files, a brace pattern (shards/train-{{000000..000099}}.tar) or a glob"
            )
        self.names, self.count = names, len(names)

    def read(self, index: int) -> Iterator[dict[str, Any]]:
        from webdataset.tariterators import group_by_keys, tar_file_expander

        with open(self.names[index], "rb") as stream:  # closed when the reader is dropped half-way, too
            yield from group_by_keys(tar_file_expander([{"url": self.names[index], "stream": stream}]))


def _plain(value: Any) -> Any:
    """OmegaConf containers as plain lists and dicts (datasets checks their types)."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)) or type(value).__name__ == "ListConfig":
        return [_plain(v) for v in value]
    return value


# -- the stream: order, buffer, position ---------------------------------------------------


@dataclass
class Position:
    """Where one slot's stream stands; plain numbers, so checkpoints store it as JSON."""

    epoch: int = 0
    cursor: int = 0  # index into this epoch's shard plan for the slot
    offset: int = 0  # records of the current shard already read
    seen: int = 0  # records met this epoch (strided plans keep every S-th)
    draws: int = 0  # samples drawn from the buffer, in all
    buffer: list[list[int]] = field(default_factory=list)  # (shard, offset, epoch) of each buffered record


class RecordStream(IterableDataset):
    """Endless samples of one split for one rank: see the module docstring."""

    def __init__(
        self,
        shards: HuggingFaceShards | TarShards,
        to_sample: Callable[[dict, torch.Generator], Any],
        buffer_size: int,
        on_error: str,
        columns: dict[str, str],
    ) -> None:
        self.shards, self.to_sample, self.buffer_size = shards, to_sample, buffer_size
        self.on_error, self.columns = on_error, dict(columns)
        self.seed, self.rank, self.world = 0, 0, 1
        self.position, self._loaded = Position(), False
        self.skipped = 0

    def place(self, seed: int, rank: int, world: int) -> RecordStream:
        """The recipe's seed and this process's share; called by the executor before loading."""
        self.seed, self.rank, self.world = seed, rank, world
        return self

    # StatefulDataLoader calls these in each worker (or in the main process with no workers)
    def state_dict(self) -> dict[str, Any]:
        return {**vars(self.position), "buffer": [list(k) for k in self.position.buffer]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.position, self._loaded = Position(**state), True

    def head(self, count: int) -> list[Any]:
        """The first ``count`` samples in shard order (no shuffle): tokenizer statistics, pictures, test splits."""
        samples: list[Any] = []
        for shard in range(self.shards.count):
            for offset, record in self._records(shard, 0):
                if len(samples) >= count:
                    return samples
                sample = self._sample(shard, offset, record, epoch=0)
                if sample is not None:
                    samples.append(sample)
        return samples

    def __iter__(self) -> Iterator[Any]:
        info = get_worker_info()
        workers, worker = (info.num_workers, info.id) if info else (1, 0)
        slot, slots = self.rank * workers + worker, self.world * workers
        if not self._loaded:
            self.position = Position()
        pos = self.position
        buffer = self._refill(pos.buffer)
        while True:
            plan, strided = self._plan(pos.epoch, slot, slots)
            read = drawn = made = 0  # this epoch's records buffered, samples tried, samples made
            whole = pos.cursor == pos.offset == pos.seen == 0  # not resumed part-way: the counts cover the epoch
            while pos.cursor < len(plan):
                shard = plan[pos.cursor]
                for offset, record in self._records(shard, pos.offset):
                    pos.offset = offset + 1
                    pos.seen += 1
                    if strided and (pos.seen - 1) % slots != slot:
                        continue
                    read += 1
                    buffer.append((shard, offset, record, pos.epoch))
                    pos.buffer.append([shard, offset, pos.epoch])
                    if len(buffer) >= self.buffer_size:
                        sample = self._draw(buffer, pos)
                        drawn, made = drawn + 1, made + (sample is not None)
                        if sample is not None:
                            yield sample
                pos.cursor, pos.offset = pos.cursor + 1, 0
            if whole and (not read or (drawn and not made)):
                raise DataError(
                    f"rank {self.rank} loader worker {worker} got no {'record' if not read else 'usable record'} "
                    f"in a whole epoch of {self.shards.count} shard(s) ({self.shards.names[0]}, ...): the "
                    f"shards are empty or every record was skipped"
                )
            pos.epoch, pos.cursor, pos.offset, pos.seen = pos.epoch + 1, 0, 0, 0

    def _plan(self, epoch: int, slot: int, slots: int) -> tuple[list[int], bool]:
        order = list(range(self.shards.count))
        random.Random(_seed(self.seed, epoch)).shuffle(order)
        if len(order) >= slots:
            return order[slot::slots], False
        return order, True

    def _draw(self, buffer: list, pos: Position) -> Any:
        """One sample from a random place in the buffer (swap with the last, pop: O(1))."""
        pick = random.Random(_seed(self.seed, 1, pos.draws)).randrange(len(buffer))
        pos.draws += 1
        buffer[pick], buffer[-1] = buffer[-1], buffer[pick]
        pos.buffer[pick], pos.buffer[-1] = pos.buffer[-1], pos.buffer[pick]
        shard, offset, record, epoch = buffer.pop()
        pos.buffer.pop()
        return self._sample(shard, offset, record, epoch)

    def _refill(self, keys: list[list[int]]) -> list:
        """The buffered records of a saved position, read again from their shards, in buffer order (a
        shard read for several epochs can hold the same record twice)."""
        wanted: dict[int, dict[int, list[int]]] = {}
        for place, (shard, offset, _) in enumerate(keys):
            wanted.setdefault(shard, {}).setdefault(offset, []).append(place)
        buffer: list = [None] * len(keys)
        for shard, offsets in wanted.items():
            last = max(offsets)
            for offset, record in self._records(shard, 0):
                for place in offsets.get(offset, ()):
                    buffer[place] = (shard, offset, record, keys[place][2])
                if offset >= last:
                    break
        if any(b is None for b in buffer):
            raise DataError(
                f"cannot resume the stream: {sum(b is None for b in buffer)} buffered record(s) are no "
                f"longer in their shards (were the shards changed since the checkpoint?)"
            )
        return buffer

    def _records(self, shard: int, start: int) -> Iterator[tuple[int, dict[str, Any]]]:
        """(offset, record) from ``start``; a shard that breaks part-way is named (raise) or left (skip)."""
        name, offset = self.shards.names[shard], start
        try:
            for offset, record in enumerate(islice(self.shards.read(shard), start, None), start):
                yield offset, record
        except DataError:
            raise
        except Exception as exc:  # noqa: BLE001 - engines raise many types on damaged files; all are named here
            detail = exc.args[0] if exc.args and isinstance(exc.args[0], str) else str(exc)  # webdataset appends the stream
            message = f"shard {name} is unreadable after {offset} record(s): {type(exc).__name__}: {' '.join(detail.split())[:200]}"
            if self.on_error == "raise":
                raise DataError(f"{message}; set data.dataset.on_error=skip to skip the rest of it") from None
            self.skipped += 1
            warnings.warn(f"{message}; skipped the rest of it ({self.skipped} skipped so far in this worker)", stacklevel=2)

    def _sample(self, shard: int, offset: int, record: dict[str, Any], epoch: int) -> Any:
        if self.columns:
            record = {self.columns.get(k, k): v for k, v in record.items()}
        generator = torch.Generator().manual_seed(_seed(self.seed, epoch, shard, offset))
        try:
            return self.to_sample(record, generator)
        except DataError as exc:
            key = f" (key {record['__key__']})" if "__key__" in record else ""
            message = f"shard {self.shards.names[shard]} record {offset}{key}: {exc}"
            if self.on_error == "raise":
                raise DataError(f"{message}; set data.dataset.on_error=skip to skip such records") from None
            self.skipped += 1
            warnings.warn(f"skipped {message} ({self.skipped} skipped so far in this worker)", stacklevel=2)
            return None


class SampleList(Dataset):
    """A small split held in memory (a streamed test split's first records)."""

    def __init__(self, samples: list[Any]) -> None:
        self.samples = samples

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> Any:
        return self.samples[index]


# -- the recipe's dataset parts ---------------------------------------------------------------


@dataclass
class StreamOptions:
    """Options both engines share."""

    modality: ClassVar[str] = ""
    buffer_size: int = 1000
    test_records: int = 512
    columns: dict[str, str] = field(default_factory=dict)
    on_error: str = "raise"

    def check(self) -> None:
        if self.on_error not in ON_ERROR:
            raise ConfigError(f"data.dataset.on_error {self.on_error!r} is unknown; accepted: {', '.join(ON_ERROR)}")
        for name in ("buffer_size", "test_records"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < (1 if name == "buffer_size" else 0):
                raise ConfigError(f"data.dataset.{name} {value!r} is invalid; accepted: an integer ≥ {1 if name == 'buffer_size' else 0}")

    def stream(self, shards: Any, tokenizer) -> RecordStream:
        from mmcore.plugins import get_registry

        from_record = get_registry().modality(self.modality).from_record
        return RecordStream(
            shards, lambda record, g: from_record(tokenizer, record, g), self.buffer_size, self.on_error, _plain(self.columns) or {}
        )

    def as_split(self, stream: RecordStream | None, split: str) -> Dataset:
        if split == "train":
            return stream
        return SampleList(stream.head(self.test_records) if stream is not None else [])


@dataclass
class HuggingFaceStream(StreamOptions):
    """``data.dataset.name=hf``: a Hugging Face dataset read as a stream (`datasets.load_dataset` with
    ``streaming=True``): ``path`` is a builder (``parquet``, ``arrow``, ``csv``, ``json``, ``imagefolder``,
    ``audiofolder``) with ``data_files`` or ``data_dir``, a local dataset folder, or a Hub dataset id in the
    local cache.
    ``test_split`` (optional) names the split whose first ``test_records`` records are held out."""

    path: str = "???"
    data_files: Any = None
    data_dir: str | None = None
    config: str | None = None
    split: str = "train"
    test_split: str | None = None

    def __post_init__(self) -> None:
        self.check()
        if not self.path or self.path == "???":
            raise ConfigError(
                "data.dataset.path is required for name=hf; e.g. data.dataset.path=parquet data.dataset.data_files='shards/train-*.parquet'"
            )

    def build(self, tokenizer, split: str) -> Dataset:
        name = self.split if split == "train" else self.test_split
        shards = HuggingFaceShards(self.path, self.config, self.data_files, name, self.data_dir) if name else None
        return self.as_split(self.stream(shards, tokenizer) if shards is not None else None, split)


@dataclass
class WebDatasetStream(StreamOptions):
    """``data.dataset.name=webdataset``: tar shards (``urls``: a brace pattern, a glob or a list);
    ``test_urls`` (optional) are shards whose first ``test_records`` records are held out."""

    urls: Any = "???"
    test_urls: Any = None

    def __post_init__(self) -> None:
        self.check()
        if not self.urls or self.urls == "???":
            raise ConfigError(
                "data.dataset.urls is required for name=webdataset; e.g. data.dataset.urls='shards/train-{000000..000099}.tar'"
            )

    def build(self, tokenizer, split: str) -> Dataset:
        urls = self.urls if split == "train" else self.test_urls
        shards = TarShards(urls) if urls else None
        return self.as_split(self.stream(shards, tokenizer) if shards is not None else None, split)


ENGINES = {"hf": HuggingFaceStream, "webdataset": WebDatasetStream}


@functools.cache
def stream_dataset(name: str, modality: str) -> type:
    """The dataset part ``name`` (``hf`` or ``webdataset``) bound to ``modality``."""
    base = ENGINES[name]
    return type(base.__name__, (base,), {"modality": modality, "__doc__": base.__doc__})


def is_stream(dataset: Any) -> bool:
    return isinstance(dataset, RecordStream)
