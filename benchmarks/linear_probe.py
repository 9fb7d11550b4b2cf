"""Linear probe and k-NN of the image demo: pretrained encoder vs. the same one untrained.

Pretrains the `image-mae-demo` recipe (MNIST 28x28, ~3.5 min on 2 CPU cores),
builds the same architecture with random weights, extracts `model.features`
(mean of the encoder's final states, no masking) for the mnist-demo train
(4000) and test (1000) splits, and scores both with the reference probes in
`mmcore.probe`. Raw pixels through the same probes are printed for context.

    python benchmarks/linear_probe.py                          # train, then probe
    python benchmarks/linear_probe.py --skip-train --out runs/probe-demo
    python benchmarks/linear_probe.py --steps 300 --json probe.json
    python benchmarks/linear_probe.py train.base_lr=2e-3      # any recipe override

Results are in docs/benchmarks.md ("Linear probe (image demo)").
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch


def raw_pixels(dataset) -> tuple[np.ndarray, np.ndarray]:
    x = np.stack([dataset[i]["image"].reshape(-1).numpy() for i in range(len(dataset))]).astype(np.float32)
    y = np.asarray([dataset[i]["label"] for i in range(len(dataset))])
    return x, y


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="runs/linear-probe-demo", help="output_dir of the pretraining run")
    ap.add_argument("--steps", type=int, default=None, help="train.steps (default: the recipe's)")
    ap.add_argument("--skip-train", action="store_true", help="reuse OUT/model from an earlier run")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random-init encoder and the probes")
    ap.add_argument("--k", type=int, default=20, help="neighbours of the k-NN probe")
    ap.add_argument("--json", default=None, help="also write the numbers to this file")
    ap.add_argument("overrides", nargs="*", help="recipe overrides key=value (e.g. train.base_lr=2e-3)")
    args = ap.parse_args(argv)

    from omegaconf import OmegaConf

    import mmcore
    from mmcore.config import load_recipe
    from mmcore.model import MaskedModel
    from mmcore.plugins import get_registry
    from mmcore.probe import probe_encoder, probe_scores, probe_table
    from mmcore.executor import train

    out = Path(args.out)
    overrides = [f"output_dir={out}", *args.overrides]
    if args.steps is not None:
        overrides.append(f"train.steps={args.steps}")
    cfg = load_recipe("image-mae-demo", overrides)
    t0 = time.perf_counter()
    folder = out / "model" if args.skip_train else train(cfg, overwrite=True)
    train_s = None if args.skip_train else time.perf_counter() - t0

    pretrained = mmcore.from_pretrained(str(folder)).eval()
    torch.manual_seed(args.seed)
    random_init = MaskedModel(pretrained.config).eval()

    dataset_cfg = OmegaConf.to_container(cfg.data.dataset, resolve=True)
    name = dataset_cfg.pop("name")
    data = get_registry().dataset("image", name)(**dataset_cfg)
    splits = {s: data.build(pretrained.tokenizer, s) for s in ("train", "test")}

    results: dict = {
        "recipe": "image-mae-demo",
        "model": str(folder),
        "train_seconds": train_s,
        "steps": int(cfg.train.steps),
        "k": args.k,
        "seed": args.seed,
        "n_train": len(splits["train"]),
        "n_test": len(splits["test"]),
        "rows": {},
    }
    encoders = {"pretrained (MAE)": pretrained, "random init": random_init}
    for label, model in encoders.items():
        results["rows"][label] = probe_encoder(model, splits["train"], splits["test"], k=args.k, seed=args.seed)
    (tx, ty), (vx, vy) = raw_pixels(splits["train"]), raw_pixels(splits["test"])
    results["rows"]["raw pixels"] = probe_scores(tx, ty, vx, vy, k=args.k, seed=args.seed)

    print(f"\nimage-mae-demo, {results['steps']} steps, {name}: {results['n_train']} train / {results['n_test']} test")
    print(probe_table(results["rows"], args.k))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
