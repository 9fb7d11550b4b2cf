"""Cross-modal learning of the `multimodal-digits` demo, on held-out pairs.

Trains the recipe (a digit's MNIST image, its spoken name and its word on one
backbone), then on the test split of every plugin's dataset:

* **text from image alone** and **text from audio alone**: the text stream is
  hidden entirely, the other given modality is the only input (the third is
  absent), and the predicted word-piece ids (argmax) must equal the word's;
* beside them, the reference linear probe (`mmcore.probe`) on the encoder's
  features of that modality alone, on the same split, and the same numbers for
  an untrained copy of the model;
* **image from text** and **audio from text**: pictures, one row per digit: the
  image predicted from the word alone beside three real test images of that
  digit; a real clip of the digit beside the spectrogram predicted from the word.

    python benchmarks/multimodal_digits.py                    # trains (~12 min on 2 cores), then scores
    python benchmarks/multimodal_digits.py --skip-train --json mm.json

Results are in docs/benchmarks.md ("Several modalities on one backbone").
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

RECIPE = "multimodal-digits"


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="runs/multimodal-digits", help="output_dir of the training run")
    ap.add_argument("--skip-train", action="store_true", help="reuse OUT/model from an earlier run")
    ap.add_argument("--steps", type=int, default=None, help="train.steps (default: the recipe's)")
    ap.add_argument("--picture", default="docs/multimodal-digits-image-from-text.png")
    ap.add_argument("--json", default=None, help="also write the numbers to this file")
    args = ap.parse_args(argv)

    import mmcore
    from mmcore.config import load_recipe
    from mmcore.joint import JointModel
    from mmcore.executor import train

    overrides = [f"output_dir={args.out}"] + ([f"train.steps={args.steps}"] if args.steps else [])
    cfg = load_recipe(RECIPE, overrides)
    t0 = time.perf_counter()
    folder = Path(args.out) / "model" if args.skip_train else train(cfg, overwrite=True)
    train_s = None if args.skip_train else time.perf_counter() - t0
    model = mmcore.from_pretrained(str(folder)).eval()
    torch.manual_seed(0)
    untrained = JointModel(model.config).eval()
    train_pairs, test_pairs = pairs(model, cfg, "train"), pairs(model, cfg, "test")

    result = {"recipe": RECIPE, "steps": cfg.train.steps, "train_seconds": train_s, "test_pairs": len(test_pairs)}
    for given in ("image", "audio"):
        result[f"text_from_{given}"] = {
            "trained": text_accuracy(model, test_pairs, given),
            "untrained": text_accuracy(untrained, test_pairs, given),
        }
        result[f"probe_{given}"] = {
            "trained": probe(model, train_pairs, test_pairs, given),
            "untrained": probe(untrained, train_pairs, test_pairs, given),
        }
    picture = image_from_text(model, test_pairs)
    Path(args.picture).parent.mkdir(parents=True, exist_ok=True)
    picture.save(args.picture)
    audio_picture = str(Path(args.picture).with_name("multimodal-digits-audio-from-text.png"))
    audio_from_text(model, test_pairs).save(audio_picture)
    result["pictures"] = [args.picture, audio_picture]
    print(table(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return result


def pairs(model, cfg, split: str):
    """The recipe's paired dataset for ``split``, through the trained model's (fitted) tokenizers."""
    from omegaconf import OmegaConf

    from mmcore.joint_data import PairedDatasets

    options = OmegaConf.to_container(cfg.data.dataset)
    tokenizers = {name: s.tokenizer for name, s in model.streams.items()}
    modalities = {name: s.modality.name for name, s in model.streams.items()}
    return PairedDatasets(**options).build(tokenizers, modalities, split)


def batches(dataset, keep: tuple[str, ...], size: int = 200):
    for start in range(0, len(dataset), size):
        items = [dataset[i] for i in range(start, min(start + size, len(dataset)))]
        yield [{k: item[k] for k in keep if item.get(k) is not None} for item in items], [item["label"] for item in items]


@torch.no_grad()
def text_accuracy(model, dataset, given: str) -> float:
    """Share of samples whose whole word is predicted from ``given`` alone (the text is hidden entirely)."""
    correct = total = 0
    for samples, _ in batches(dataset, (given, "text")):
        ids, tokens = model.predict_whole(model.collate(samples), "text")
        truth = tokens.values
        valid = tokens.valid if tokens.valid is not None else torch.ones_like(truth, dtype=torch.bool)
        right = ((ids.long() == truth) | ~valid).all(dim=1) & valid.any(dim=1)
        correct += int(right.sum())
        total += len(samples)
    return correct / max(total, 1)


def probe(model, train_set, test_set, given: str) -> float:
    """The reference linear probe on the encoder's features of ``given`` alone."""
    from mmcore.probe import linear_probe

    def features(dataset):
        xs, ys = [], []
        for samples, labels in batches(dataset, (given,)):
            xs.append(model.features(model.collate(samples)).float().numpy())
            ys.extend(labels)
        return np.concatenate(xs), np.asarray(ys)

    return linear_probe(*features(train_set), *features(test_set))


@torch.no_grad()
def image_from_text(model, dataset, real: int = 3):
    """One row per digit: the image predicted from the word alone, then ``real`` test images of that digit."""
    from PIL import Image

    by_label = examples_by_label(dataset, "image", real)
    digits = sorted(by_label)
    samples = [
        {"text": by_label[d][0]["text"], "image": {"image": torch.zeros_like(by_label[d][0]["image"]["image"])}} for d in digits
    ]  # the zero image only gives the shape: it is hidden entirely
    values, tokens = model.predict_whole(model.collate(samples), "image")
    predicted = model.streams["image"].tokenizer.detokenize(values, tokens)  # [10, C, H, W]
    rows = []
    for d, image in zip(digits, predicted):
        cells = [image] + [item["image"]["image"] for item in by_label[d]]
        rows.append(torch.cat([c[0].clamp(0, 1) for c in cells], dim=1))  # [H, W × (1 + real)]
    grid = (torch.cat(rows, dim=0).numpy() * 255).astype(np.uint8)
    return Image.fromarray(grid).resize((grid.shape[1] * 4, grid.shape[0] * 4), Image.NEAREST)


def examples_by_label(dataset, stream: str, count: int) -> dict[int, list]:
    by_label: dict[int, list] = {}
    for i in range(len(dataset)):
        item = dataset[i]
        if item.get("text") is not None and item.get(stream) is not None:
            if len(by_label.setdefault(item["label"], [])) < count:
                by_label[item["label"]].append(item)
    return by_label


@torch.no_grad()
def audio_from_text(model, dataset):
    """Spectrograms, one row per digit: a real test clip of the digit | blank | the clip predicted from the word alone.
    Two halves (digits 0-4, 5-9) stacked, as the audio plugin's picture draws a few rows at a time."""
    from PIL import Image

    stream = model.streams["audio"]
    by_label = examples_by_label(dataset, "audio", 1)
    halves = []
    for digits in (range(0, 5), range(5, 10)):
        samples = [{"text": by_label[d][0]["text"], "audio": stream.tokenizer.placeholder()} for d in digits if d in by_label]
        real = [{"audio": by_label[d][0]["audio"]} for d in digits if d in by_label]
        predicted, tokens = model.predict_whole(model.collate(samples), "audio")
        real_tokens = model.tokenize(model.collate(real))["audio"]
        detok = stream.tokenizer.detokenize
        original = detok(real_tokens.values, real_tokens)
        halves.append(stream.modality.picture(original, torch.full_like(original, float(original.mean())), detok(predicted, tokens)))
    width = max(h.size[0] for h in halves)
    canvas = Image.new("RGB", (width, sum(h.size[1] for h in halves) + 4), "white")
    canvas.paste(halves[0], (0, 0))
    canvas.paste(halves[1], (0, halves[0].size[1] + 4))
    return canvas


def table(r: dict) -> str:
    lines = ["| from | to | trained | untrained | linear probe of the input (trained / untrained) |", "|---|---|---|---|---|"]
    for given in ("image", "audio"):
        acc, pr = r[f"text_from_{given}"], r[f"probe_{given}"]
        lines.append(
            f"| {given} alone | text | {acc['trained']:.1%} | {acc['untrained']:.1%} | {pr['trained']:.1%} / {pr['untrained']:.1%} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
