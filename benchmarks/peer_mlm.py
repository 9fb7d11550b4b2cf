"""mmcore's text and protein MLM against their peers at an equal budget, same process.

    python benchmarks/peer_mlm.py                          # both modalities, the recipes' steps
    python benchmarks/peer_mlm.py --only text --steps 300 --eval-every 50
    python benchmarks/peer_mlm.py --mm model.tokenizer.tie_embeddings=false   # an mmcore variant

Text: the text-mlm recipe (its corpus, its WordPiece vocabulary learned on the training split)
against ``BertForMaskedLM`` fed by ``DataCollatorForLanguageModeling`` (15%, 80/10/10). Protein:
protein-mlm (its demo corpus, the ESM alphabet, which is mmcore's id for id) against
``EsmForMaskedLM`` (ESM-2's layout: rotary positions, no embedding LayerNorm, token dropout)
with the same collator. Both sides get the same batches in the same order (the executor's own
data order, `mmcore.batches.iterate_batches`), the same width, depth, heads and MLP, no dropout,
the same AdamW (the executor's lr = base_lr × batch / 256, betas, weight decay off 1-D tensors,
fused), warmup-cosine schedule, gradient clipping, steps and seed. mmcore's model is built and
trained with the executor's pieces (`build_single`, `param_groups`, `warmup_cosine`), each side
masking its batches its own way. Steps alternate (one mmcore step, one peer step) so load on the
machine hits both alike; each side's clock counts its own masking, forward, backward and update.

Every ``--eval-every`` steps both are scored with `mlm_quality`'s held-out protocol: 15% of each
test sample hidden with a fixed seed (the same positions for both sides), all shown as the mask
token, top-1 accuracy and perplexity over the hidden tokens. Writes
benchmarks/results/peer-mlm.json and docs/peer-mlm.png (accuracy against steps and against
seconds). The comparison "after the same seconds" reads each curve at the time the slower side
finished, interpolating between evaluations.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import torch
from torch.utils.data import DataLoader

from mmcore.batches import DataPosition, iterate_batches
from mmcore.config import load_recipe, model_dict
from mmcore.discrete import BertMasking
from mmcore.executor import build_single, param_groups, warmup_cosine
from mmcore.sampling import hidden_logits

RECIPES = {"text": "text-mlm", "protein": "protein-mlm"}
ROOT = Path(__file__).resolve().parent.parent


# -- the peers ---------------------------------------------------------------------------


def hf_tokenizer(modality: str, tok):
    """A transformers tokenizer over mmcore's own ids: what DataCollatorForLanguageModeling needs
    (the mask token, the vocabulary size for its 10% random tokens)."""
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    if modality == "text":
        backend = Tokenizer.from_str(tok.tokenizer_json)
        names = {"mask_token": backend.id_to_token(tok.mask_id), "pad_token": backend.id_to_token(tok.pad_id)}
    else:
        from mm_protein.alphabet import TOKENS

        backend = Tokenizer(models.WordLevel({t: i for i, t in enumerate(TOKENS)}, unk_token="<unk>"))
        names = {"mask_token": "<mask>", "pad_token": "<pad>", "unk_token": "<unk>", "cls_token": "<cls>", "eos_token": "<eos>"}
    out = PreTrainedTokenizerFast(tokenizer_object=backend, **names)
    assert len(out) == tok.vocab_size and out.mask_token_id == tok.mask_id, (len(out), tok.vocab_size)
    return out


def build_peer(modality: str, cfg, tok):
    """BertForMaskedLM / EsmForMaskedLM at the recipe's size and dropout (``model.encoder.dropout``, on the
    blocks' branches and attention probabilities as mmcore's; BERT also drops its embedding output)."""
    import transformers

    enc = cfg.model.encoder
    size = dict(
        hidden_size=enc.dim,
        num_hidden_layers=enc.depth,
        num_attention_heads=enc.heads,
        intermediate_size=int(enc.dim * enc.mlp_ratio),
        hidden_dropout_prob=float(enc.dropout),
        attention_probs_dropout_prob=float(enc.dropout),
        vocab_size=tok.vocab_size,
        pad_token_id=int(tok.pad_id),
    )
    if modality == "text":
        config = transformers.BertConfig(max_position_embeddings=tok.max_length, **size)
        return "transformers.BertForMaskedLM", transformers.BertForMaskedLM(config)
    config = transformers.EsmConfig(
        max_position_embeddings=tok.max_length + 2,
        mask_token_id=int(tok.mask_id),
        position_embedding_type="rotary",
        emb_layer_norm_before=False,
        token_dropout=True,
        **size,
    )  # ESM-2's layout
    return "transformers.EsmForMaskedLM", transformers.EsmForMaskedLM(config)


def transformers_version(script: str, peers: str) -> str | None:
    """transformers' version, or None after saying on stderr that only the mmcore side will run."""
    try:
        import transformers
    except ImportError:
        print(
            f"{script}: transformers is NOT installed (pip install 'transformers>=4.40'): there is no "
            f"{peers} to compare with; running and scoring the mmcore side only",
            file=sys.stderr,
            flush=True,
        )
        return None
    return transformers.__version__


# -- training ------------------------------------------------------------------------------


def optimizer_for(model, cfg, lr: float):
    t = cfg.train
    optimizer = torch.optim.AdamW(param_groups(model, t.weight_decay), lr=lr, betas=tuple(t.betas), fused=True)
    return optimizer, warmup_cosine(optimizer, t.warmup_steps, t.steps, t.min_lr / lr if lr else 0.0)


def update(model, optimizer, scheduler, clip: float) -> None:
    torch.nn.utils.clip_grad_norm_(model.parameters(), clip or float("inf"))
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    scheduler.step()


@torch.no_grad()
def held_out(model, peer, test_set, collate, tok, batches: int | None, seed: int = 0) -> dict[str, dict]:
    """mlm_quality's protocol, one mask per sample shared by both sides: accuracy and perplexity."""
    policy, generator = BertMasking(ratio=0.15), torch.Generator().manual_seed(seed)
    sums = {side: [0.0, 0.0, 0.0] for side in ("mmcore", "peer")[: 1 + (peer is not None)]}  # tokens, correct, nll
    model.eval()
    for i, batch in enumerate(DataLoader(test_set, batch_size=32, collate_fn=collate)):
        if batches is not None and i >= batches:
            break
        tokens = model.tokenizer.tokenize(batch)
        hidden = policy(tokens, generator)
        logits, index, slot = hidden_logits(model, tokens, hidden)
        target = tokens.values.gather(1, index)[slot]
        scored = {"mmcore": logits[slot]}
        shown = tokens.values.masked_fill(hidden, tok.mask_id)
        valid = tokens.valid if tokens.valid is not None else torch.ones_like(hidden)
        if peer is not None:
            peer.eval()
            peer_logits = peer(input_ids=shown, attention_mask=valid.long()).logits  # [B, N, V]
            scored["peer"] = peer_logits.gather(1, index[..., None].expand(-1, -1, peer_logits.shape[-1]))[slot]
            peer.train()
        for side, x in scored.items():
            logp = torch.log_softmax(x.double(), dim=-1)
            s = sums[side]
            s[0] += target.numel()
            s[1] += (logp.argmax(-1) == target).sum().item()
            s[2] -= logp.gather(1, target[:, None]).sum().item()
    model.train()
    return {side: {"accuracy": c / n, "perplexity": math.exp(nll / n)} for side, (n, c, nll) in sums.items()}


def run(modality: str, args) -> dict:
    overrides = ["train.trackers=[]", *args.set, *([f"train.steps={args.steps}"] if args.steps else [])]
    cfg = load_recipe(RECIPES[modality], overrides + list(args.mm))
    peer_cfg = load_recipe(RECIPES[modality], overrides)  # the same recipe without mmcore-only options
    t = cfg.train
    torch.manual_seed(t.seed)
    model, train_set, test_set, collate = build_single(model_dict(cfg), dict(cfg.data.dataset))
    tok = model.tokenizer
    torch.manual_seed(t.seed)
    lr = t.base_lr * cfg.data.batch_size / 256  # one process, no accumulation: the executor's rule
    sides = {"mmcore": (model, *optimizer_for(model, cfg, lr))}
    peer_name, peer = "none (transformers is not installed)", None
    if args.with_peer:
        from transformers import DataCollatorForLanguageModeling

        peer_name, peer = build_peer(modality, peer_cfg, tok)
        sides["peer"] = (peer, *optimizer_for(peer, cfg, lr))
        collator = DataCollatorForLanguageModeling(hf_tokenizer(modality, tok), mlm_probability=0.15, seed=t.seed)
    for net, *_ in sides.values():
        net.train()
    place = SimpleNamespace(num_processes=1, process_index=0, device=torch.device("cpu"))
    batches = iterate_batches(train_set, collate, cfg.data.batch_size, 0, t.seed, place, DataPosition())
    mask_generator = torch.Generator()
    params = {side: sum(p.numel() for p in net.parameters()) for side, (net, *_) in sides.items()}
    print(
        f"{modality}: mmcore {params['mmcore'] / 1e6:.2f}M vs {peer_name} {params.get('peer', 0) / 1e6:.2f}M params, "
        f"{len(train_set)} train / {len(test_set)} test samples, {t.steps} steps, batch {cfg.data.batch_size}, "
        f"lr {lr:.3g}",
        flush=True,
    )
    seconds = {"mmcore": 0.0, "peer": 0.0}
    curve = []

    def evaluate(step: int) -> None:
        q = held_out(model, peer, test_set, collate, tok, args.eval_batches)
        curve.append(
            {
                "step": step,
                **{f"{side}_{k}": v for side, r in q.items() for k, v in r.items()},
                **{f"{side}_seconds": seconds[side] for side in q},
            }
        )
        print(
            f"  step {step:5d}"
            + "".join(f"  {side} acc {r['accuracy']:.3f} ppl {r['perplexity']:7.2f} ({seconds[side]:6.1f}s)" for side, r in q.items()),
            flush=True,
        )

    losses = {"mmcore": [], "peer": []}
    evaluate(0)
    for step in range(1, t.steps + 1):
        batch = next(batches)
        valid = batch.get("valid")
        # mmcore: the executor's step (mask seed per step, one micro-batch, loss = mean over scored tokens)
        net, optimizer, scheduler = sides["mmcore"]
        start = time.perf_counter()
        mask_generator.manual_seed(t.seed * 1_000_003 + step * 7919)
        loss = net(batch, generator=mask_generator).loss
        loss.backward()
        update(net, optimizer, scheduler, t.grad_clip)
        seconds["mmcore"] += time.perf_counter() - start
        losses["mmcore"].append(loss.item())
        if peer is None:
            if step % args.eval_every == 0 or step == t.steps:
                evaluate(step)
            continue
        # the peer: DataCollatorForLanguageModeling's masking of the same ids, then its own step
        net, optimizer, scheduler = sides["peer"]
        start = time.perf_counter()
        special = ~valid if valid is not None else torch.zeros_like(batch["ids"], dtype=torch.bool)
        inputs, labels = collator.torch_mask_tokens(batch["ids"].clone(), special_tokens_mask=special)
        attention = valid.long() if valid is not None else torch.ones_like(inputs)
        loss = net(input_ids=inputs, attention_mask=attention, labels=labels).loss
        loss.backward()
        update(net, optimizer, scheduler, t.grad_clip)
        seconds["peer"] += time.perf_counter() - start
        losses["peer"].append(loss.item())
        if step % args.eval_every == 0 or step == t.steps:
            evaluate(step)
    return {
        "modality": modality,
        "recipe": RECIPES[modality],
        "peer": peer_name,
        "steps": t.steps,
        "batch_size": cfg.data.batch_size,
        "lr": lr,
        "params": params,
        "mmcore_overrides": list(args.mm),
        "overrides": overrides,
        "vocab": tok.vocab_size,
        "train_samples": len(train_set),
        "test_samples": len(test_set),
        "curve": curve,
        "same_steps": curve[-1],
        "same_seconds": same_seconds(curve) if peer is not None else None,
        "train_loss_last50": {s: sum(v[-50:]) / len(v[-50:]) for s, v in losses.items() if v},
    }


def at_time(curve: list[dict], side: str, when: float) -> dict[str, float]:
    """``side``'s accuracy and perplexity at ``when`` seconds, linear between evaluations."""
    points = [(r[f"{side}_seconds"], r[f"{side}_accuracy"], r[f"{side}_perplexity"]) for r in curve]
    for (t0, a0, p0), (t1, a1, p1) in zip(points, points[1:]):
        if t0 <= when <= t1:
            w = (when - t0) / (t1 - t0) if t1 > t0 else 1.0
            return {"accuracy": a0 + w * (a1 - a0), "perplexity": math.exp(math.log(p0) + w * (math.log(p1) - math.log(p0)))}
    return {"accuracy": points[-1][1], "perplexity": points[-1][2]}


def same_seconds(curve: list[dict]) -> dict:
    """Both sides read at the time the faster one finished its steps (the slower has not yet)."""
    when = min(curve[-1]["mmcore_seconds"], curve[-1]["peer_seconds"])
    return {"seconds": when, **{f"{side}_{k}": v for side in ("mmcore", "peer") for k, v in at_time(curve, side, when).items()}}


def picture(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(results), 2, figsize=(10, 3.6 * len(results)), squeeze=False)
    for row, r in zip(axes, results):
        for ax, x in zip(row, ("step", "seconds")):
            for side, label, style in (("mmcore", "mmcore", "-"), ("peer", r["peer"].split(".")[-1], "--")):
                if f"{side}_accuracy" not in r["curve"][0]:
                    continue
                xs = [c["step"] if x == "step" else c[f"{side}_seconds"] for c in r["curve"]]
                ax.plot(xs, [c[f"{side}_accuracy"] for c in r["curve"]], style, marker="o", markersize=3, label=label)
            ax.set_xlabel("training steps" if x == "step" else "training seconds (this machine)")
            ax.set_ylabel("held-out masked accuracy")
            ax.set_title(f"{r['modality']} ({r['recipe']}), against {x}")
            ax.grid(alpha=0.3)
            ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=sorted(RECIPES), action="append")
    parser.add_argument("--steps", type=int, help="training steps (default: the recipe's)")
    parser.add_argument("--eval-every", type=int, default=50)
    parser.add_argument("--eval-batches", type=int, default=None, help="held-out batches of 32 (default: all)")
    parser.add_argument("--set", action="append", default=[], help="recipe override for both sides, e.g. data.batch_size=16")
    parser.add_argument("--mm", action="append", default=[], help="recipe override for mmcore only")
    parser.add_argument("--json", default=str(ROOT / "benchmarks/results/peer-mlm.json"))
    parser.add_argument("--png", default=str(ROOT / "docs/peer-mlm.png"))
    args = parser.parse_args()
    version = transformers_version("peer_mlm", "BertForMaskedLM / EsmForMaskedLM")
    args.with_peer = version is not None
    results = [run(m, args) for m in args.only or sorted(RECIPES, reverse=True)]
    print(
        f"\n{'modality':9s} {'side':30s} {'params':>8s} | {'steps':>5s} {'acc':>6s} {'ppl':>7s} | {'seconds':>7s} {'acc':>6s} {'ppl':>7s}"
    )
    for r in results:
        if r["same_seconds"] is None:
            a = r["same_steps"]
            print(
                f"{r['modality']:9s} {'mmcore (no peer)':30s} {r['params']['mmcore'] / 1e6:7.2f}M | {a['step']:5d} "
                f"{a['mmcore_accuracy']:6.3f} {a['mmcore_perplexity']:7.2f} | {a['mmcore_seconds']:7.1f}"
            )
            continue
        for side, name in (("mmcore", "mmcore"), ("peer", r["peer"])):
            a, b = r["same_steps"], r["same_seconds"]
            print(
                f"{r['modality']:9s} {name:30s} {r['params'][side] / 1e6:7.2f}M | {a['step']:5d} "
                f"{a[f'{side}_accuracy']:6.3f} {a[f'{side}_perplexity']:7.2f} | {b['seconds']:7.1f} "
                f"{b[f'{side}_accuracy']:6.3f} {b[f'{side}_perplexity']:7.2f}"
            )
        end = r["same_steps"]
        print(
            f"{'':9s} {'seconds for all steps':30s} mmcore {end['mmcore_seconds']:.1f}, peer {end['peer_seconds']:.1f} "
            f"(peer / mmcore {end['peer_seconds'] / end['mmcore_seconds']:.2f})"
        )
    out = {"device": f"cpu ({torch.get_num_threads()} threads)", "torch": torch.__version__, "transformers": version, "results": results}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=2))
    picture(results, Path(args.png))
    print(f"results: {args.json}\npicture: {args.png}")


if __name__ == "__main__":
    main()
