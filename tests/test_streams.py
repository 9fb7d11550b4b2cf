"""Streamed datasets (mmcore.streams) on real parquet files read by Hugging Face datasets and real tar
shards read by webdataset: the order is dealt over ranks and loader workers without loss, a loader's
saved state resumes the stream exactly, and damaged shards and records are named or skipped."""

import io
import json
import tarfile
import warnings

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from torchdata.stateful_dataloader import StatefulDataLoader

from mmcore.errors import ConfigError, DataError
from mmcore.plugins import get_registry
from mmcore.streams import HuggingFaceShards, RecordStream, TarShards, stream_dataset

SIZES = [7, 8, 9, 10, 11]  # records per shard: uneven on purpose


def write_tar(path, records):
    with tarfile.open(path, "w") as tar:
        for key, members in records:
            for ext, data in members.items():
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))


@pytest.fixture(scope="module")
def shard_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("shards")
    for i, size in enumerate(SIZES):
        texts = [f"s{i}-{j}" for j in range(size)]
        pq.write_table(pa.table({"text": texts}), root / f"train-{i}.parquet")
        write_tar(root / f"train-{i}.tar", [(f"{i:03d}{j:03d}", {"txt": t.encode()}) for j, t in enumerate(texts)])
    return root


def engines(root):
    return {
        "hf": lambda: HuggingFaceShards("parquet", None, {"train": str(root / "train-*.parquet")}, "train"),
        "webdataset": lambda: TarShards(str(root / "train-{0..4}.tar")),
    }


def to_sample(record, generator):
    text = record["text"] if "text" in record else record["txt"].decode()
    if text == "bad":
        raise DataError("field 'text' is 'bad'")
    return {"text": text, "draw": torch.rand((), generator=generator).item()}


def loader(shards, rank=0, world=1, workers=0, buffer_size=4, on_error="raise"):
    stream = RecordStream(shards, to_sample, buffer_size, on_error, {}).place(3, rank, world)
    return StatefulDataLoader(stream, batch_size=3, collate_fn=lambda batch: batch, num_workers=workers)


def take(loader_, count):
    it = iter(loader_)
    return [next(it) for _ in range(count)]


@pytest.mark.parametrize("engine", ["hf", "webdataset"])
@pytest.mark.parametrize("workers,world", [(0, 1), (0, 2), (2, 1), (2, 2), (0, 7)])  # 7 slots > 5 shards: strided
def test_a_saved_loader_state_resumes_the_stream_exactly(shard_dir, engine, workers, world):
    shards = engines(shard_dir)[engine]()
    for rank in range(world):
        full = take(loader(shards, rank, world, workers), 14)  # past one epoch: crosses the epoch boundary
        first = loader(shards, rank, world, workers)
        head = take(first, 5)
        state = json.loads(json.dumps(first.state_dict()))  # what a checkpoint stores: JSON
        resumed = loader(shards, rank, world, workers)
        resumed.load_state_dict(state)
        assert head + take(resumed, 9) == full, f"rank {rank} of {world}"


def test_both_engines_give_the_same_stream(shard_dir):
    hf, wds = (take(loader(make(), workers=0), 6) for make in engines(shard_dir).values())
    assert hf == wds


@pytest.mark.parametrize("world", [1, 2, 3, 7])
def test_one_epoch_over_all_ranks_reads_every_record_once(shard_dir, world):
    shards = engines(shard_dir)["webdataset"]()
    seen = []
    for rank in range(world):
        stream = RecordStream(shards, to_sample, 1, "raise", {}).place(3, rank, world)
        for sample in stream:
            if stream.position.epoch > 0:
                break
            seen.append(sample["text"])
    assert sorted(seen) == sorted(f"s{i}-{j}" for i, size in enumerate(SIZES) for j in range(size))


def test_the_order_depends_on_the_seed_and_the_epoch(shard_dir):
    shards = engines(shard_dir)["hf"]()
    a = [s["text"] for s in RecordStream(shards, to_sample, 8, "raise", {}).place(3, 0, 1).head(45)]
    stream = iter(RecordStream(shards, to_sample, 8, "raise", {}).place(3, 0, 1))
    epoch0 = [next(stream)["text"] for _ in range(45)]
    other = iter(RecordStream(shards, to_sample, 8, "raise", {}).place(4, 0, 1))
    assert epoch0 != a and sorted(epoch0) != epoch0  # shuffled
    assert [next(other)["text"] for _ in range(45)] != epoch0
    assert [next(stream)["text"] for _ in range(45)] != epoch0  # the next epoch is another order


def test_a_damaged_tar_shard_is_named_or_its_rest_skipped(tmp_path):
    write_tar(tmp_path / "a.tar", [(f"a{j}", {"txt": f"a{j}".encode()}) for j in range(6)])
    write_tar(tmp_path / "b.tar", [(f"b{j}", {"txt": f"b{j}".encode() * 200}) for j in range(6)])
    data = (tmp_path / "b.tar").read_bytes()
    (tmp_path / "b.tar").write_bytes(data[:1536] + b"\x00garbage" * 64 + data[1536 + 512 : 3000])  # torn mid-file
    shards = TarShards(str(tmp_path / "*.tar"))
    with pytest.raises(DataError, match=r"b\.tar is unreadable after \d+ record.*on_error=skip"):
        take(loader(shards, buffer_size=1), 6)
    with pytest.warns(UserWarning, match=r"b\.tar is unreadable.*skipped the rest of it \(1 skipped"):
        texts = [s["text"] for batch in take(loader(shards, buffer_size=1, on_error="skip"), 6) for s in batch]
    assert {t for t in texts if t.startswith("a")} == {f"a{j}" for j in range(6)}


def test_a_bad_record_is_named_by_shard_offset_and_key_or_skipped(tmp_path):
    write_tar(tmp_path / "a.tar", [(f"k{j}", {"txt": b"bad" if j == 2 else f"t{j}".encode()}) for j in range(6)])
    shards = TarShards(str(tmp_path / "a.tar"))
    with pytest.raises(DataError, match=r"shard .*a\.tar record 2 \(key k2\): field 'text' is 'bad'"):
        take(loader(shards, buffer_size=1), 2)
    with pytest.warns(UserWarning, match=r"skipped shard .*a\.tar record 2 \(key k2\).*\(1 skipped so far"):
        texts = [s["text"] for batch in take(loader(shards, buffer_size=1, on_error="skip"), 2) for s in batch]
    assert "bad" not in texts and texts[:5] == ["t0", "t1", "t3", "t4", "t5"]


def test_only_bad_records_is_an_error_not_a_hang(tmp_path):
    write_tar(tmp_path / "a.tar", [(f"k{j}", {"txt": b"bad"}) for j in range(3)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(DataError, match="got no usable record in a whole epoch"):
            take(loader(TarShards(str(tmp_path / "a.tar")), on_error="skip"), 1)


def test_missing_shards_and_bad_options_are_one_line_errors(tmp_path):
    with pytest.raises(DataError, match=r"no shard matches .*nothing-\*\.tar"):
        TarShards(str(tmp_path / "nothing-*.tar"))
    with pytest.raises(DataError, match=r"no such shard .*x-1\.tar"):
        TarShards(str(tmp_path / "x-{1..2}.tar"))
    with pytest.raises(DataError, match="datasets cannot open 'parquet'"):
        HuggingFaceShards("parquet", None, {"train": str(tmp_path / "none-*.parquet")}, "train")
    text = stream_dataset("webdataset", "text")
    with pytest.raises(ConfigError, match="data.dataset.urls is required"):
        text()
    with pytest.raises(ConfigError, match="on_error 'ignore' is unknown"):
        text(urls="x.tar", on_error="ignore")
    with pytest.raises(ConfigError, match="buffer_size 0 is invalid"):
        text(urls="x.tar", buffer_size=0)


def test_every_shipped_modality_streams_through_the_registry():
    registry = get_registry()
    for name in registry.names("modalities"):
        if registry.streams(name):
            assert {"hf", "webdataset"} <= set(registry.names("datasets", name))
            assert registry.dataset(name, "hf").modality == name


def test_an_imagefolder_streams_through_datasets_into_image_samples(tmp_path):
    """``path=imagefolder``: datasets lists the files and names the classes; the image plugin decodes them."""
    import numpy as np
    from PIL import Image

    from mmcore.executor import build_single

    for label in ("cats", "dogs"):
        (tmp_path / label).mkdir()
        for i in range(5):
            Image.fromarray(np.full((20, 24, 3), 40 * i + (label == "dogs") * 20, np.uint8)).save(tmp_path / label / f"{i}.png")
    config = {
        "modality": "image",
        "style": "mae",
        "tokenizer": {"image_size": [16, 16], "patch_size": 4, "channels": 3},
        "masking": {"name": "random", "ratio": 0.75},
        "target": {"name": "pixels"},
        "encoder": {"dim": 16, "depth": 1, "heads": 2},
        "decoder": {"dim": 16, "depth": 1, "heads": 2},
    }
    _, train_set, test_set, collate = build_single(
        config, {"name": "hf", "path": "imagefolder", "data_dir": str(tmp_path), "buffer_size": 3}
    )
    samples = train_set.place(0, 0, 1).head(10)
    assert len(samples) == 10 and len(test_set) == 0
    assert sorted(s["label"] for s in samples) == [0] * 5 + [1] * 5
    assert collate(samples)["images"].shape == (10, 3, 16, 16)
    drawn = [s["label"] for s, _ in zip(train_set, range(10))]
    assert set(drawn) == {0, 1}  # shuffled across the two classes (a buffer of 3 reaches into the next epoch)


def test_a_hub_dataset_in_the_local_cache_streams_offline(tmp_path, monkeypatch):
    """``path=me/words`` already downloaded: read from its cached snapshot, the Hub never asked."""
    import huggingface_hub.constants

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "datasets--me--words"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "snapshots" / commit / "data").mkdir(parents=True)
    for split in ("train", "test"):
        texts = [f"{split} {i}" for i in range(12)]
        pq.write_table(pa.table({"text": texts}), repo / "snapshots" / commit / "data" / f"{split}-00000-of-00001.parquet")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    test = HuggingFaceShards("me/words", None, None, "test")
    assert [r["text"] for r in test.read(0)] == [f"test {i}" for i in range(12)]
    stream = RecordStream(HuggingFaceShards("me/words", None, None, "train"), to_sample, 4, "raise", {}).place(0, 0, 1)
    assert sorted(s["text"] for s in stream.head(12)) == sorted(f"train {i}" for i in range(12))
