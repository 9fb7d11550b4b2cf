"""mmcore's image MAE against transformers' ViTMAEForPreTraining at an equal budget, same process.

    python benchmarks/peer_mae.py                               # the recipe's 1500 steps
    python benchmarks/peer_mae.py --steps 300 --eval-every 50
    python benchmarks/peer_mae.py --probe-train 1000 --probe-test 500   # quicker probes
    python benchmarks/peer_mae.py --mm model.encoder.class_token=false --mm model.decoder_reads_class_token=false   # no class token
    python benchmarks/peer_mae.py --same-init     # mmcore starts from ViTMAE's initial weights: only the masks differ

The image-mae-demo recipe (4000 MNIST digits, 28x28, 4x4 patches, 75% of them hidden at random,
encoder 128 wide x 6 blocks, decoder 96 x 2, pixel MSE on hidden patches, no norm_pix) against a
``ViTMAEForPreTraining`` of the same size built the way `mmcore.interop.hf_vitmae` maps one onto the
other: exact GELU, pre-norm, q/k/v with bias, LayerNorm eps = the recipe's ``encoder.norm_eps``,
fixed sin-cos positions, no dropout, MSE per hidden patch averaged over hidden patches. Both sides
get the same batches in the same order (the executor's data order, `mmcore.batches.iterate_batches`)
and the same pixels: the collate's ``images`` [B, 1, 28, 28] in [0, 1], normalised by the
tokenizer's mean/std where the recipe sets them (it does not), are mmcore's batch and ViTMAE's
``pixel_values``. Same AdamW (the executor's lr = base_lr x batch / 256, betas, no decay on 1-D and
token tensors, fused), warmup-cosine schedule, gradient clipping, steps and seed; mmcore's model and
optimizer come from the executor's own pieces (`build_single`, `param_groups`, `warmup_cosine`,
``mask_seed`` per step). Each side masks its own way: mmcore's random policy, ViTMAE's
``random_masking`` (its noise drawn from a seeded generator rather than the global one, so runs
repeat). Both hide 37 of 49 patches. Steps alternate so machine load hits both alike; each side's
clock counts only its own masking, forward, backward and update.

Every ``--eval-every`` steps and at the end, both encoders are scored with the reference probes of
`mmcore.probe` (linear probe and 20-NN accuracy, as `benchmarks/linear_probe.py` does) on features of
the mnist-demo train split (probe training) and test split (score). Pooling, the same on both sides:
the mean over the 49 patch tokens of the encoder's final LayerNorm output, nothing hidden, no class
token. mmcore: ``model.features`` (its encoder drops a class token from the output when it has one);
ViTMAE: ``ViTMAEModel`` run with mask_ratio 0 and ordered noise (all patches kept in order,
`hf_vitmae.peer_states`), ``last_hidden_state[:, 1:]`` averaged (the class token, row 0, left out).

transformers 5.23 builds a fresh ``ViTMAEForPreTraining`` with all-zero (frozen) position tables,
class and mask tokens: ``initialize_weights`` of its embeddings is skipped once the patch conv is
marked initialised, and the decoder's tables are zeroed after its own init. Such a model cannot
tell patches apart, so ViTMAE's own ``initialize_weights`` is run again where a table came out zero
(listed under ``peer_init_restored`` in the JSON); ``--peer-as-built`` keeps the model as built.
What still differs is printed and listed under ``differences``: each library's own initialisation
(mmcore xavier-uniform linears, ViTMAE normal(0.02): early losses differ by the output scale), and,
for a recipe without them, ViTMAE's class token and its decoder's reading of it (image-mae-demo sets
both; the ``--mm`` options in the example above give them to a recipe that does not).

Writes benchmarks/results/peer-mae.json and docs/peer-mae.png (linear-probe and k-NN accuracy
against steps and against seconds). "After the same seconds" reads each curve at the time the
faster side finished, interpolating between evaluations.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from torch.utils.data import Subset

from mmcore.backbone import TransformerConfig
from mmcore.batches import DataPosition, iterate_batches
from mmcore.config import load_recipe, model_dict
from mmcore.executor import build_single, mask_seed
from mmcore.interop.hf_vitmae import from_vitmae, peer_states
from mmcore.interop.timm_vit import normalise
from mmcore.plugins import get_registry
from mmcore.probe import extract_features, probe_scores

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling text/protein benchmark
from peer_mlm import optimizer_for, transformers_version, update  # noqa: E402

RECIPE = "image-mae-demo"
ROOT = Path(__file__).resolve().parent.parent
METRICS = ("linear", "knn")


# -- the peer ------------------------------------------------------------------------------


def build_peer(cfg, tok, as_built: bool) -> tuple[str, torch.nn.Module, list[str]]:
    """ViTMAEForPreTraining at the recipe's size; the options `hf_vitmae.to_vitmae` uses to match mmcore."""
    from transformers import ViTMAEConfig, ViTMAEForPreTraining

    m = model_dict(cfg)
    enc, dec = TransformerConfig(**m["encoder"]), TransformerConfig(**m["decoder"])
    masking, target = m["masking"], m["target"]
    (H, W), p = tok.image_size, tok.patch_size
    refused = []
    if H != W:
        refused.append(f"images of {H}x{W}; ViTMAE's are square")
    if masking.get("name") != "random":
        refused.append(f"masking {masking.get('name')!r}; ViTMAE hides patches uniformly at random")
    if target.get("name") != "pixels":
        refused.append(f"target {target.get('name')!r}; ViTMAE predicts pixels")
    if refused:
        raise SystemExit("peer_mae: no ViTMAE peer for this recipe: " + "; ".join(refused))
    config = ViTMAEConfig(
        image_size=H,
        patch_size=p,
        num_channels=tok.channels,
        hidden_size=enc.dim,
        num_hidden_layers=enc.depth,
        num_attention_heads=enc.heads,
        intermediate_size=int(enc.dim * enc.mlp_ratio),
        decoder_hidden_size=dec.dim,
        decoder_num_hidden_layers=dec.depth,
        decoder_num_attention_heads=dec.heads,
        decoder_intermediate_size=int(dec.dim * dec.mlp_ratio),
        hidden_act="gelu",
        qkv_bias=True,
        layer_norm_eps=enc.norm_eps,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        mask_ratio=float(masking.get("ratio", 0.75)),
        norm_pix_loss=bool(target.get("norm_pix", False)),
    )
    peer = ViTMAEForPreTraining(config)
    return "transformers.ViTMAEForPreTraining", peer, [] if as_built else restore_init(peer)


@torch.no_grad()
def restore_init(peer) -> list[str]:
    """Run ViTMAE's own ``initialize_weights`` again where transformers left a position table at zero
    (see the module docstring); returns what was restored. A version that initialises them is left as is."""
    emb, dec = peer.vit.embeddings, peer.decoder
    restored = []
    if not emb.position_embeddings.any():
        conv = emb.patch_embeddings.projection
        flag = conv.__dict__.get("_is_hf_initialized")
        conv._is_hf_initialized = False  # the marker that makes the embeddings skip their own init
        try:
            emb.initialize_weights()
        finally:
            if flag is None:
                del conv._is_hf_initialized
            else:
                conv._is_hf_initialized = flag
        restored.append("encoder: sin-cos position table, class token normal(0.02), patch projection xavier-uniform")
    if not dec.decoder_pos_embed.any():
        dec.initialize_weights(emb.patch_embeddings.num_patches)
        restored.append("decoder: sin-cos position table, mask token normal(0.02)")
    if not (emb.position_embeddings.any() and dec.decoder_pos_embed.any()):
        raise SystemExit("peer_mae: ViTMAE's position tables are still zero after its own initialize_weights")
    return restored


def differences(model, peer) -> list[str]:
    """What still differs between the two models (the comparison's caveats), for the JSON and the log."""
    out = (
        []
        if model.config.get("init") == "normal"
        else [
            "initialisation: mmcore xavier-uniform linears (model.init=mae); ViTMAE normal(0.02) linears "
            "(xavier-uniform patch projection once restored)"
        ]
    )
    out.append("sin-cos positions: the same tables up to the order of their halves (ViTMAE column-first, mmcore row-first)")
    enc = model.encoder.config
    if not enc.class_token:
        out.append(
            "class token: ViTMAE's encoder has one and its decoder reads its output; this mmcore encoder "
            "has none (--mm model.encoder.class_token=true --mm model.decoder_reads_class_token=true adds both)"
        )
    elif not model.decoder_reads_class_token:
        out.append(
            "class token: ViTMAE's decoder reads the encoder's class-token output; mmcore's does not "
            "(--mm model.decoder_reads_class_token=true)"
        )
    eps = {enc.norm_eps, model.decoder.config.norm_eps}
    if eps != {peer.config.layer_norm_eps}:
        out.append(f"LayerNorm eps: mmcore's {sorted(eps)}, ViTMAE's {peer.config.layer_norm_eps}")
    n = model.tokenizer.grid[0] * model.tokenizer.grid[1]
    ours = model.policy.num_hidden(n) if hasattr(model.policy, "num_hidden") else None
    theirs = n - int(n * (1 - peer.config.mask_ratio))
    if ours != theirs:
        out.append(f"hidden patches: mmcore {ours} of {n}, ViTMAE {theirs}")
    return out


# -- evaluation ------------------------------------------------------------------------------


@torch.no_grad()
def peer_features(peer, dataset, collate, tok, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """ViTMAE's encoder over every image, nothing hidden: the mean of the final LayerNorm's patch rows
    (class token left out), the pooling ``model.features`` gives mmcore's encoder."""
    peer.eval()
    feats, labels = [], []
    for start in range(0, len(dataset), batch_size):
        batch = collate([dataset[i] for i in range(start, min(start + batch_size, len(dataset)))])
        feats.append(peer_states(peer, batch["images"], tok.mean, tok.std).mean(dim=1).float().numpy())
        labels.append(batch["labels"].numpy())
    peer.train()
    return np.concatenate(feats), np.concatenate(labels)


def probe_both(model, peer, peer_tok, splits, collate, k: int) -> dict[str, dict]:
    """Both reference probes (`mmcore.probe.probe_scores`) on each side's features of the same samples."""
    (train, test), out = splits, {}
    (tx, ty), (vx, vy) = (extract_features(model, s) for s in (train, test))
    out["mmcore"] = probe_scores(tx, ty, vx, vy, k=k)
    if peer is not None:
        (tx, ty), (vx, vy) = (peer_features(peer, s, collate, peer_tok) for s in (train, test))
        out["peer"] = probe_scores(tx, ty, vx, vy, k=k)
    return out


def at_time(curve: list[dict], side: str, when: float) -> dict[str, float]:
    """``side``'s probe accuracies at ``when`` seconds, linear between evaluations (the last past its end)."""
    rows = [(r[f"{side}_seconds"], [r[f"{side}_{m}"] for m in METRICS]) for r in curve]
    for (t0, a), (t1, b) in zip(rows, rows[1:]):
        if t0 <= when <= t1:
            w = (when - t0) / (t1 - t0) if t1 > t0 else 1.0
            return {m: x + w * (y - x) for m, x, y in zip(METRICS, a, b)}
    return dict(zip(METRICS, rows[-1][1]))


def same_seconds(curve: list[dict]) -> dict:
    """Both sides read at the time the faster one finished its steps (the slower has not yet)."""
    when = min(curve[-1]["mmcore_seconds"], curve[-1]["peer_seconds"])
    return {"seconds": when, **{f"{s}_{m}": v for s in ("mmcore", "peer") for m, v in at_time(curve, s, when).items()}}


# -- the run -----------------------------------------------------------------------------------


def first(dataset, n: int | None):
    """The first ``n`` samples (all when None): smaller probes for quick runs, the same ones for both sides."""
    return dataset if n is None or n >= len(dataset) else Subset(dataset, range(n))


def run(args) -> dict:
    overrides = ["train.trackers=[]", *args.set, *([f"train.steps={args.steps}"] if args.steps else [])]
    if args.same_init:  # ViTMAE's position tables are loaded into mmcore's, so mmcore must hold tables
        args.mm = [*args.mm, "model.tokenizer.positions=fixed"]
    cfg = load_recipe(RECIPE, overrides + list(args.mm))
    peer_cfg = load_recipe(RECIPE, overrides)  # the same recipe without mmcore-only options
    t = cfg.train
    torch.manual_seed(t.seed)
    model, train_set, test_set, collate = build_single(model_dict(cfg), dict(cfg.data.dataset))
    tok = model.tokenizer
    torch.manual_seed(t.seed)
    lr = t.base_lr * cfg.data.batch_size / 256  # one process, no accumulation: the executor's rule
    peer_name, peer, peer_tok, restored, caveats = "none (transformers is not installed)", None, tok, [], []
    if args.with_peer:
        peer_tok = get_registry().modality("image").tokenizer(**model_dict(peer_cfg)["tokenizer"])  # its pixels' mean/std
        peer_name, peer, restored = build_peer(peer_cfg, peer_tok, args.peer_as_built)
        caveats = differences(model, peer)
        if args.same_init:
            model.load_state_dict(from_vitmae(peer, {})[1], strict=True)
            caveats = ["none in the weights: mmcore starts from ViTMAE's initial weights (--same-init)"]
    elif args.same_init:
        raise SystemExit("peer_mae: --same-init copies ViTMAE's initial weights and needs transformers installed")
    sides = {"mmcore": (model, *optimizer_for(model, cfg, lr))}
    if peer is not None:
        sides["peer"] = (peer, *optimizer_for(peer, cfg, lr))
    for net, *_ in sides.values():
        net.train()
    place = SimpleNamespace(num_processes=1, process_index=0, device=torch.device("cpu"))
    batches = iterate_batches(train_set, collate, cfg.data.batch_size, 0, t.seed, place, DataPosition())
    mask_generator, noise_generator = torch.Generator(), torch.Generator().manual_seed(t.seed + 1)
    splits = (first(train_set, args.probe_train), first(test_set, args.probe_test))
    params = {s: sum(p.numel() for p in net.parameters() if p.requires_grad) for s, (net, *_) in sides.items()}
    print(
        f"{RECIPE}: mmcore {params['mmcore'] / 1e6:.3f}M vs {peer_name} {params.get('peer', 0) / 1e6:.3f}M trainable "
        f"params, {len(train_set)} train / {len(test_set)} test images, {t.steps} steps, batch {cfg.data.batch_size}, "
        f"lr {lr:.3g}; probes on {len(splits[0])} / {len(splits[1])}",
        flush=True,
    )
    for line in restored:
        print(f"  ViTMAE init restored: {line}", flush=True)
    for line in caveats:
        print(f"  differs: {line}", flush=True)
    seconds = {"mmcore": 0.0, "peer": 0.0}
    curve = []

    def evaluate(step: int) -> None:
        start = time.perf_counter()
        q = probe_both(model, peer, peer_tok, splits, collate, args.k)
        curve.append({"step": step, **{f"{s}_{m}": r[m] for s, r in q.items() for m in METRICS}, **{f"{s}_seconds": seconds[s] for s in q}})
        print(
            f"  step {step:5d}"
            + "".join(f"  {s} linear {r['linear']:.3f} {args.k}-NN {r['knn']:.3f} ({seconds[s]:6.1f}s)" for s, r in q.items())
            + f"  [probes {time.perf_counter() - start:.0f}s]",
            flush=True,
        )

    losses = {"mmcore": [], "peer": []}
    evaluate(0)
    for step in range(1, t.steps + 1):
        batch = next(batches)
        # mmcore: the executor's step (its mask seed for this step, one micro-batch)
        net, optimizer, scheduler = sides["mmcore"]
        start = time.perf_counter()
        mask_generator.manual_seed(mask_seed(t.seed, step - 1, 0))
        loss = net(batch, generator=mask_generator).loss
        loss.backward()
        update(net, optimizer, scheduler, t.grad_clip)
        seconds["mmcore"] += time.perf_counter() - start
        losses["mmcore"].append(loss.item())
        if peer is not None:
            # ViTMAE: the same pixels, its own random_masking (argsort of the noise keeps the lowest)
            net, optimizer, scheduler = sides["peer"]
            start = time.perf_counter()
            images = normalise(batch["images"], peer_tok.mean, peer_tok.std)
            noise = torch.rand(images.shape[0], net.vit.embeddings.patch_embeddings.num_patches, generator=noise_generator)
            loss = net(pixel_values=images, noise=noise).loss
            loss.backward()
            update(net, optimizer, scheduler, t.grad_clip)
            seconds["peer"] += time.perf_counter() - start
            losses["peer"].append(loss.item())
        if step % args.eval_every == 0 or step == t.steps:
            evaluate(step)
    return {
        "recipe": RECIPE,
        "peer": peer_name,
        "steps": t.steps,
        "batch_size": cfg.data.batch_size,
        "lr": lr,
        "params_trainable": params,
        "mmcore_overrides": list(args.mm),
        "overrides": overrides,
        "train_samples": len(train_set),
        "test_samples": len(test_set),
        "probe": {
            "train": len(splits[0]),
            "test": len(splits[1]),
            "k": args.k,
            "pooling": "mean of the final LayerNorm's patch-token states, nothing hidden, no class token (both sides)",
        },
        "peer_init_restored": restored,
        "differences": caveats,
        "curve": curve,
        "same_steps": curve[-1],
        "same_seconds": same_seconds(curve) if peer is not None else None,
        "train_loss_last50": {s: sum(v[-50:]) / len(v[-50:]) for s, v in losses.items() if v},
        "seconds": {s: seconds[s] for s in sides},
    }


# -- output -----------------------------------------------------------------------------------


def picture(r: dict, path: Path) -> None:
    """Linear-probe and k-NN accuracy (rows) against steps and against seconds (columns)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(10, 7.2))
    names = {"mmcore": "mmcore", "peer": r["peer"].split(".")[-1]}
    for row, metric in zip(axes, METRICS):
        for ax, x in zip(row, ("step", "seconds")):
            for side, style in (("mmcore", "-"), ("peer", "--")):
                if f"{side}_{metric}" not in r["curve"][0]:
                    continue
                xs = [c["step"] if x == "step" else c[f"{side}_seconds"] for c in r["curve"]]
                ax.plot(xs, [c[f"{side}_{metric}"] for c in r["curve"]], style, marker="o", markersize=3, label=names[side])
            ax.set_xlabel("training steps" if x == "step" else "training seconds (this machine)")
            ax.set_ylabel("linear-probe accuracy" if metric == "linear" else f"{r['probe']['k']}-NN accuracy")
            ax.set_title(f"{r['recipe']}: {'linear probe' if metric == 'linear' else 'k-NN'} against {x}")
            ax.grid(alpha=0.3)
            ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def table(r: dict) -> str:
    """Per side: params, probes after the same steps and at the same seconds, last-50 loss, seconds."""
    a, b = r["same_steps"], r["same_seconds"]
    lines = [
        f"{'side':34s} {'params':>8s} | {'steps':>5s} {'linear':>6s} {'k-NN':>6s} | {'seconds':>7s} {'linear':>6s} "
        f"{'k-NN':>6s} | {'loss50':>7s} {'train s':>7s}"
    ]
    for side, name in (("mmcore", "mmcore"), ("peer", r["peer"])):
        if side not in r["params_trainable"]:
            continue
        at = f"{b['seconds']:7.1f} {b[f'{side}_linear']:6.3f} {b[f'{side}_knn']:6.3f}" if b else f"{'':7s} {'':6s} {'':6s}"
        lines.append(
            f"{name:34s} {r['params_trainable'][side] / 1e6:7.3f}M | {a['step']:5d} {a[f'{side}_linear']:6.3f} "
            f"{a[f'{side}_knn']:6.3f} | {at} | {r['train_loss_last50'][side]:7.4f} {r['seconds'][side]:7.1f}"
        )
    if b:
        s = r["seconds"]
        lines.append(f"seconds for all steps: mmcore {s['mmcore']:.1f}, peer {s['peer']:.1f} (peer / mmcore {s['peer'] / s['mmcore']:.2f})")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, help="training steps (default: the recipe's)")
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument("--set", action="append", default=[], help="recipe override for both sides, e.g. train.seed=1")
    parser.add_argument("--mm", action="append", default=[], help="recipe override for mmcore only")
    parser.add_argument("--probe-train", type=int, default=None, help="first N training images for the probes (default: all)")
    parser.add_argument("--probe-test", type=int, default=None, help="first N test images for the probes (default: all)")
    parser.add_argument("--k", type=int, default=20, help="neighbours of the k-NN probe")
    parser.add_argument("--peer-as-built", action="store_true", help="keep ViTMAE's init as transformers builds it")
    parser.add_argument("--same-init", action="store_true", help="start mmcore from ViTMAE's initial weights: only the masks differ")
    parser.add_argument("--json", default=str(ROOT / "benchmarks/results/peer-mae.json"))
    parser.add_argument("--png", default=str(ROOT / "docs/peer-mae.png"))
    args = parser.parse_args()
    version = transformers_version("peer_mae", "ViTMAEForPreTraining")
    args.with_peer = version is not None
    result = run(args)
    print("\n" + table(result))
    out = {"device": f"cpu ({torch.get_num_threads()} threads)", "torch": torch.__version__, "transformers": version, **result}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=2))
    picture(result, Path(args.png))
    print(f"results: {args.json}\npicture: {args.png}")


if __name__ == "__main__":
    main()
