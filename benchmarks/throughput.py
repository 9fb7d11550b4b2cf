"""Training-step throughput of mmcore against its Hugging Face peer, same process.

Each row times full training steps (forward, backward, AdamW step) of an
mmcore model and of the transformers model built with the same architecture,
on the same random inputs, alternating rounds so drift hits both equally, and
prints items/s for each and the ratio (mmcore / peer).

    python benchmarks/throughput.py                   # CPU tiny config
    python benchmarks/throughput.py --preset h100     # ViT-B/16 224², dec 8×512, bf16, batch 256
    python benchmarks/throughput.py --preset h100 --compile

Both sides get fused AdamW and the same autocast; the peer uses SDPA
attention. Architectural differences are listed in docs/benchmarks.md
(ViTMAE has a CLS token: 1 extra token in the encoder).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from contextlib import nullcontext
from dataclasses import dataclass

import torch

PRESETS = {
    # name: image, patch, channels, enc (dim, depth, heads), dec (dim, depth, heads), batch, mask ratio
    "cpu-tiny": dict(image=32, patch=4, channels=3, enc=(192, 4, 3), dec=(128, 2, 4), batch=64, ratio=0.75),
    "h100": dict(image=224, patch=16, channels=3, enc=(768, 12, 12), dec=(512, 8, 16), batch=256, ratio=0.75),
}


@dataclass
class Case:
    name: str
    model: torch.nn.Module
    step_loss: callable  # images -> loss


def build_mmcore(p: dict, device: torch.device) -> Case:
    from mmcore.model import MaskedModel

    config = {
        "modality": "image", "style": "mae",
        "tokenizer": {"image_size": [p["image"], p["image"]], "patch_size": p["patch"], "channels": p["channels"]},
        "masking": {"name": "random", "ratio": p["ratio"]}, "target": {"name": "pixels", "norm_pix": False},
        "encoder": dict(zip(("dim", "depth", "heads"), p["enc"]), mlp_ratio=4.0),
        "decoder": dict(zip(("dim", "depth", "heads"), p["dec"]), mlp_ratio=4.0),
    }
    model = MaskedModel(config).to(device)
    generator = torch.Generator(device=device).manual_seed(0)
    return Case("mmcore", model, lambda images: model({"images": images}, generator=generator).loss)


def build_hf(p: dict, device: torch.device) -> Case:
    from transformers import ViTMAEConfig, ViTMAEForPreTraining

    (d, depth, heads), (dd, ddepth, dheads) = p["enc"], p["dec"]
    config = ViTMAEConfig(
        image_size=p["image"], patch_size=p["patch"], num_channels=p["channels"], hidden_size=d, num_hidden_layers=depth,
        num_attention_heads=heads, intermediate_size=4 * d, decoder_hidden_size=dd, decoder_num_hidden_layers=ddepth,
        decoder_num_attention_heads=dheads, decoder_intermediate_size=4 * dd, mask_ratio=p["ratio"], norm_pix_loss=False,
        attn_implementation="sdpa",
    )
    model = ViTMAEForPreTraining(config).to(device)
    return Case("transformers.ViTMAEForPreTraining", model, lambda images: model(pixel_values=images).loss)


def time_steps(case: Case, images: list[torch.Tensor], steps: int, autocast, compile_: bool) -> float:
    """Seconds per training step, median over ``steps`` timed steps."""
    model = case.model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    loss_fn = torch.compile(case.step_loss) if compile_ else case.step_loss
    sync = torch.cuda.synchronize if images[0].is_cuda else (lambda: None)
    times = []
    for i in range(steps):
        sync()
        start = time.perf_counter()
        with autocast():
            loss = loss_fn(images[i % len(images)])
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu-tiny")
    parser.add_argument("--batch", type=int, help="override the preset's batch size")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per model")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--compile", action="store_true", help="torch.compile both step functions")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()

    p = dict(PRESETS[args.preset])
    if args.batch:
        p["batch"] = args.batch
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if bf16 else nullcontext
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    torch.manual_seed(0)
    images = [torch.rand(p["batch"], p["channels"], p["image"], p["image"], device=device) for _ in range(4)]

    cases = [build_mmcore(p, device), build_hf(p, device)]
    for case in cases:  # warm-up (and compilation) outside the timed rounds
        time_steps(case, images, args.warmup, autocast, args.compile)
    per_step: dict[str, list[float]] = {c.name: [] for c in cases}
    for _ in range(args.rounds):
        for case in cases:
            per_step[case.name].append(time_steps(case, images, args.steps, autocast, args.compile))

    rate = {name: p["batch"] / statistics.median(ts) for name, ts in per_step.items()}
    mm, hf = rate[cases[0].name], rate[cases[1].name]
    params = {c.name: sum(x.numel() for x in c.model.parameters()) / 1e6 for c in cases}
    print(f"preset {args.preset} on {torch.cuda.get_device_name() if device.type == 'cuda' else 'cpu'} "
          f"({torch.get_num_threads()} threads), batch {p['batch']}, bf16 {bf16}, compile {args.compile}")
    print(f"{'model':40s} {'params (M)':>10s} {'img/s':>10s}")
    for name in rate:
        print(f"{name:40s} {params[name]:10.2f} {rate[name]:10.1f}")
    print(f"ratio mmcore / peer: {mm / hf:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"preset": args.preset, "compile": args.compile, "batch": p["batch"], "bf16": bf16,
                       "items_per_s": rate, "ratio": mm / hf}, f, indent=2)


if __name__ == "__main__":
    main()
