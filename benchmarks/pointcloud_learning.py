"""Does Point-MAE pre-training on the primitive-shapes demo learn? Two checks, held-out shapes:

1. linear probe (mmcore.probe, the reference probe) of shape class on encoder
   features: trained encoder vs the same architecture at random initialisation
   (several initialisation seeds);
2. Chamfer-L2 of the predicted hidden groups (fixed seeded masks) vs the
   trivial prediction "every point at the group centre" (and vs the random model).

Pre-training sees unlabelled clouds only: by default 8000 generated shapes (labels
unused), as Point-MAE pre-trains on ShapeNet and probes on ModelNet. The probes
always use the same labelled split: 800 training and 240 held-out shapes, drawn
with other seeds than the pre-training clouds.

    python benchmarks/pointcloud_learning.py                  # ~40 min on 1 idle CPU core (2 runs fit side by side)
    python benchmarks/pointcloud_learning.py --steps 300      # a quicker look
    python benchmarks/pointcloud_learning.py --model runs/pointcloud-learning/model   # re-probe, no training

Probe features are `MaskedModel.features`, i.e. the modality's pooling (mm-pointcloud:
max + mean over the encoder's group tokens), the same for the trained and the random models.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
from pathlib import Path

import torch

from mmcore import from_pretrained
from mmcore.config import load_recipe
from mmcore.model import MaskedModel
from mmcore.probe import probe_encoder
from mmcore.executor import train
from mm_pointcloud import ShapesDemo


@torch.no_grad()
def masked_chamfer(model: MaskedModel, dataset, batch_size: int = 64) -> tuple[float, float]:
    """(model's Chamfer on hidden groups, Chamfer of predicting the group centre), same seeded masks."""
    model.eval()
    ours, centre, n = 0.0, 0.0, 0
    for i, start in enumerate(range(0, len(dataset), batch_size)):
        batch = model.tokenizer.collate([dataset[j] for j in range(start, min(start + batch_size, len(dataset)))])
        out = model(batch, generator=torch.Generator().manual_seed(i))
        target = model.target(out.tokens).gather(1, out.index[..., None].expand(-1, -1, out.pred.shape[-1]))
        ours += out.token_loss.sum().item()
        centre += model.head.loss(torch.zeros_like(target), target).sum().item()
        n += out.token_loss.numel()
    return ours / n, centre / n


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--random-seeds", type=int, default=3, help="random-init baselines to probe")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--out", default="runs/pointcloud-learning", help="the trained model folder (with its picture) goes here")
    parser.add_argument(
        "--model",
        help="evaluate this model folder (trained by an earlier run of this script with the "
        "same steps and overrides) instead of training again",
    )
    parser.add_argument(
        "overrides",
        nargs="*",
        default=[
            "model.tokenizer.num_points=512",
            "model.tokenizer.num_groups=32",
            "model.tokenizer.group_size=32",
            "model.encoder.dim=96",
            "model.encoder.depth=3",
            "model.decoder.depth=1",
            "data.dataset.num_train=8000",
        ],
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = load_recipe(
        "pointcloud-mae", [f"train.steps={args.steps}", f"output_dir={args.out}", f"train.checkpoint_every={args.steps}", *args.overrides]
    )
    if args.model:
        folder = Path(args.model)
    else:
        with contextlib.redirect_stderr(io.StringIO()):
            folder = train(cfg, overwrite=True)
    trained = from_pretrained(str(folder))
    labelled = ShapesDemo(num_train=800, num_test=240, seed=1000 + cfg.train.seed)
    train_set, test_set = labelled.build(trained.tokenizer, "train"), labelled.build(trained.tokenizer, "test")
    result = {
        "model": str(folder),
        "picture": str(folder / "reconstruction.png"),
        "steps": args.steps,
        "overrides": args.overrides,
        "probe_train_shapes": len(train_set),
        "probe_test_shapes": len(test_set),
    }
    result["trained"] = probe_encoder(trained, train_set, test_set)
    result["chamfer_trained"], result["chamfer_centre"] = masked_chamfer(trained, test_set)
    for seed in range(args.random_seeds):
        torch.manual_seed(seed)
        random_model = MaskedModel(trained.config).eval()
        result[f"random_seed{seed}"] = probe_encoder(random_model, train_set, test_set)
        result[f"chamfer_random_seed{seed}"] = masked_chamfer(random_model, test_set)[0]
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
