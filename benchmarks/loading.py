"""Data-loading throughput of the audio and video readers against what a CPU training step consumes.

Writes real files once into a scratch folder (the audio demo's clips as 16-bit
WAV; moving-digit clips as H.264 MP4), then times, separately:

* loading: ``DataLoader(num_workers=W)`` over the folder dataset with the
  recipe's tokenizer ``collate`` (decode, resample, Kaldi fbank, crop/pad for
  audio; decode, frame sampling, resize/crop for video), in items/s;
* consuming: full training steps (forward, backward, fused AdamW) of the
  recipe's model on batches of the same shape, in items/s.

Loading must outrun the step, or the step starves.

    python benchmarks/loading.py                     # both, 2 workers, demo recipes
    python benchmarks/loading.py --only video --workers 1 --json loading.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).parent))
from throughput import time_steps  # noqa: E402

RECIPES = {"audio": "audio-mae", "video": "video-mae"}


def write_audio_files(folder: Path, tokenizer, count: int) -> None:
    import soundfile as sf
    from mm_audio import SpokenDigits

    clips = SpokenDigits().build(tokenizer, "train")
    for i in range(count):
        sf.write(str(folder / f"{i:04d}.wav"), clips.wave(i).numpy(), tokenizer.sample_rate, subtype="PCM_16")


def write_video_files(folder: Path, tokenizer, count: int, frames: int) -> None:
    import av
    from mm_video.demo import mnist, moving_digit

    images, _ = mnist()
    H, W = tokenizer.image_size
    for i in range(count):
        clip = moving_digit(images[i], i, frames, (H, W))
        with av.open(str(folder / f"{i:04d}.mp4"), "w") as container:
            stream = container.add_stream("libx264", rate=25)
            stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
            for frame in clip:
                rgb = np.repeat(frame[..., None], 3, axis=2)
                container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
            container.mux(stream.encode())


def loader_rate(dataset, tokenizer, batch_size: int, workers: int, epochs: int) -> float:
    """Items/s through a DataLoader, after one warm-up batch (worker start-up excluded)."""
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=workers,
        collate_fn=tokenizer.collate,
        persistent_workers=workers > 0,
    )
    it = iter(loader)
    next(it)
    start, items = time.perf_counter(), 0
    for batch in it:
        items += len(batch["labels"])
    for _ in range(epochs - 1):
        for batch in loader:
            items += len(batch["labels"])
    return items / (time.perf_counter() - start)


def step_rate(model, batch: dict, steps: int) -> float:
    """Training items/s of ``model`` on ``batch`` (median step time)."""
    from contextlib import nullcontext

    generator = torch.Generator().manual_seed(0)
    step = lambda b: model(b, generator=generator).loss  # noqa: E731
    time_steps(model, step, [batch], 2, nullcontext, False)  # warm-up
    return len(batch["labels"]) / time_steps(model, step, [batch], steps, nullcontext, False)


def run(modality: str, args, scratch: Path) -> dict:
    from mmcore.config import load_recipe, model_dict
    from mmcore.model import MaskedModel
    from mmcore.plugins import get_registry

    cfg = load_recipe(RECIPES[modality])
    config = model_dict(cfg)
    registry = get_registry()
    tokenizer = registry.modality(modality).tokenizer(**config["tokenizer"])
    folder = scratch / modality
    folder.mkdir()
    t = time.perf_counter()
    if modality == "audio":
        write_audio_files(folder, tokenizer, args.files)
        dataset = registry.dataset("audio", "folder")(path=str(folder)).build(tokenizer, "train")
        tokenizer.fit(dataset)
        config["tokenizer"] = {**config["tokenizer"], "mean": tokenizer.mean, "std": tokenizer.std}
    else:
        write_video_files(folder, tokenizer, args.files, frames=2 * tokenizer.num_frames)
        dataset = registry.dataset("video", "folder")(path=str(folder), stride=1).build(tokenizer, "train")
    write_s = time.perf_counter() - t
    batch_size = cfg.data.batch_size
    loading = loader_rate(dataset, tokenizer, batch_size, args.workers, args.epochs)
    torch.manual_seed(0)
    model = MaskedModel(config)
    batch = tokenizer.collate([dataset[i] for i in range(batch_size)])
    consuming = step_rate(model, batch, args.steps)
    return {
        "modality": modality,
        "recipe": RECIPES[modality],
        "files": args.files,
        "workers": args.workers,
        "batch_size": batch_size,
        "threads": torch.get_num_threads(),
        "write_seconds": write_s,
        "loading_items_per_s": loading,
        "step_items_per_s": consuming,
        "margin": loading / consuming,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=sorted(RECIPES), action="append", help="modalities (default: both)")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader worker processes")
    parser.add_argument("--files", type=int, default=512, help="files written per modality")
    parser.add_argument("--epochs", type=int, default=2, help="passes over the files while timing the loader")
    parser.add_argument("--steps", type=int, default=10, help="timed training steps")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    results = []
    print(f"cpu ({torch.get_num_threads()} threads), {args.workers} loader workers")
    print(f"{'modality':9s} {'recipe':10s} {'loading items/s':>16s} {'step items/s':>13s} {'margin':>7s}")
    with tempfile.TemporaryDirectory(prefix="mm-loading-") as scratch:
        for modality in args.only or sorted(RECIPES):
            r = run(modality, args, Path(scratch))
            results.append(r)
            print(f"{modality:9s} {r['recipe']:10s} {r['loading_items_per_s']:16.1f} {r['step_items_per_s']:13.1f} {r['margin']:7.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
