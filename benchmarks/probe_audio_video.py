"""Linear probe and k-NN of the audio and video demos: pretrained encoder vs. the same one untrained.

Pretrains the demo recipe (`audio-mae`: spoken digits; `video-mae`: moving
MNIST digits), builds the same architecture with random weights, extracts
`model.features` (mean of the encoder's final states over real tokens, no
masking) for the demo's train and held-out test clips, and scores both with
the reference probes in `mmcore.probe` (digit classes).

    python benchmarks/probe_audio_video.py --modality audio
    python benchmarks/probe_audio_video.py --modality video --steps 600 --json video.json
    python benchmarks/probe_audio_video.py --modality audio --skip-train --out runs/probe-audio

Results are in docs/benchmarks.md ("Audio and video demos").
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

RECIPES = {"audio": "audio-mae", "video": "video-mae"}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--modality", choices=sorted(RECIPES), required=True)
    ap.add_argument("--out", default=None, help="output_dir of the pretraining run (default runs/probe-MODALITY)")
    ap.add_argument("--steps", type=int, default=None, help="train.steps (default: the recipe's)")
    ap.add_argument("--skip-train", action="store_true", help="reuse OUT/model from an earlier run")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random-init encoder and the probes")
    ap.add_argument("--k", type=int, default=20, help="neighbours of the k-NN probe")
    ap.add_argument("--json", default=None, help="also write the numbers to this file")
    ap.add_argument("overrides", nargs="*", help="recipe overrides key=value")
    args = ap.parse_args(argv)

    from omegaconf import OmegaConf

    import mmcore
    from mmcore.config import load_recipe
    from mmcore.model import MaskedModel
    from mmcore.plugins import get_registry
    from mmcore.probe import probe_encoder, probe_table
    from mmcore.executor import train

    recipe = RECIPES[args.modality]
    out = Path(args.out or f"runs/probe-{args.modality}")
    overrides = [f"output_dir={out}", *args.overrides]
    if args.steps is not None:
        overrides.append(f"train.steps={args.steps}")
    cfg = load_recipe(recipe, overrides)
    t0 = time.perf_counter()
    folder = out / "model" if args.skip_train else train(cfg, overwrite=True)
    train_s = None if args.skip_train else time.perf_counter() - t0

    pretrained = mmcore.from_pretrained(str(folder)).eval()
    torch.manual_seed(args.seed)
    random_init = MaskedModel(pretrained.config).eval()  # same tokenizer settings (fitted statistics included)

    dataset_cfg = OmegaConf.to_container(cfg.data.dataset, resolve=True)
    name = dataset_cfg.pop("name")
    data = get_registry().dataset(args.modality, name)(**dataset_cfg)
    splits = {s: data.build(pretrained.tokenizer, s) for s in ("train", "test")}

    results: dict = {
        "recipe": recipe,
        "model": str(folder),
        "train_seconds": train_s,
        "steps": int(cfg.train.steps),
        "overrides": args.overrides,
        "k": args.k,
        "seed": args.seed,
        "n_train": len(splits["train"]),
        "n_test": len(splits["test"]),
        "threads": torch.get_num_threads(),
        "rows": {},
    }
    for label, model in {"pretrained (MAE)": pretrained, "random init": random_init}.items():
        results["rows"][label] = probe_encoder(model, splits["train"], splits["test"], k=args.k, seed=args.seed, batch_size=128)

    print(f"\n{recipe}, {results['steps']} steps, {name}: {results['n_train']} train / {results['n_test']} test clips")
    print(probe_table(results["rows"], args.k))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
