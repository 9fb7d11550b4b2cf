"""Held-out masked-token accuracy and perplexity of the text and protein recipes,
against a unigram-frequency baseline fitted on the same training split.

    python benchmarks/mlm_quality.py                       # both recipes, their own step counts
    python benchmarks/mlm_quality.py --only protein train.steps=300

Each recipe is trained with the same code as ``mm train``. Evaluation hides
15% of every held-out sample's tokens with a fixed seed and shows them all as
the mask token (no 80/10/10 at test time); accuracy is top-1 over hidden
tokens, perplexity is exp(mean cross-entropy) over the same tokens. The
baseline predicts every hidden token from the training split's token
frequencies (add-one smoothed): its accuracy is that of always guessing the
most frequent token.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from mmcore import from_pretrained
from mmcore.config import load_recipe
from mmcore.discrete import BertMasking
from mmcore.model import build_part
from mmcore.plugins import get_registry
from mmcore.sampling import hidden_logits
from mmcore.executor import train

RECIPES = {"text": "text-mlm", "protein": "protein-mlm"}


def unigram_logprobs(model, dataset, batch_size: int = 64) -> torch.Tensor:
    """log p(id) from the training split's token counts, add-one smoothed: [V]."""
    counts = torch.ones(model.tokenizer.vocab_size, dtype=torch.float64)
    for batch in DataLoader(dataset, batch_size=batch_size, collate_fn=model.tokenizer.collate):
        ids = batch["ids"] if "valid" not in batch else batch["ids"][batch["valid"]]
        counts += torch.bincount(ids.flatten(), minlength=counts.numel()).double()
    return (counts / counts.sum()).log()


@torch.no_grad()
def evaluate(model, dataset, unigram: torch.Tensor, batch_size: int = 32, seed: int = 0, rounds: int = 1) -> dict[str, float]:
    """``rounds`` passes over the held-out split, each hiding other tokens (one generator): more scored
    tokens, so less noise from which tokens happened to be hidden (the split itself stays the same)."""
    policy = BertMasking(ratio=0.15)
    generator = torch.Generator().manual_seed(seed)
    n = correct = nll = base_correct = base_nll = 0.0
    best = unigram.argmax()
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=model.tokenizer.collate)
    for batch in (b for _ in range(rounds) for b in loader):
        tokens = model.tokenizer.tokenize(batch)
        hidden = policy(tokens, generator)
        logits, index, slot = hidden_logits(model, tokens, hidden)
        target = tokens.values.gather(1, index)[slot]  # [M]
        logp = torch.log_softmax(logits[slot].double(), dim=-1)  # [M, V]
        n += target.numel()
        correct += (logp.argmax(-1) == target).sum().item()
        nll -= logp.gather(1, target[:, None]).sum().item()
        base_correct += (target == best).sum().item()
        base_nll -= unigram[target].sum().item()
    return {
        "hidden_tokens": int(n),
        "accuracy": correct / n,
        "perplexity": math.exp(nll / n),
        "unigram_accuracy": base_correct / n,
        "unigram_perplexity": math.exp(base_nll / n),
    }


def run(modality: str, overrides: list[str], out: Path, rounds: int = 8) -> dict:
    cfg = load_recipe(RECIPES[modality], [f"output_dir={out / modality}", "train.trackers=[]", *overrides])
    start = time.perf_counter()
    folder = train(cfg, overwrite=True)
    minutes = (time.perf_counter() - start) / 60
    model = from_pretrained(str(folder)).eval()
    dataset_cfg = dict(cfg.data.dataset)
    dataset = build_part(get_registry().dataset, modality, dataset_cfg)
    unigram = unigram_logprobs(model, dataset.build(model.tokenizer, "train"))
    result = evaluate(model, dataset.build(model.tokenizer, "test"), unigram, rounds=rounds)
    result.update(
        modality=modality,
        recipe=RECIPES[modality],
        steps=cfg.train.steps,
        train_minutes=round(minutes, 1),
        params_m=round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
        vocab=model.tokenizer.vocab_size,
        rounds=rounds,
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("overrides", nargs="*", help="recipe overrides for every run, e.g. train.steps=300")
    parser.add_argument("--only", choices=sorted(RECIPES), action="append")
    parser.add_argument("--out", default="runs/mlm-quality")
    parser.add_argument("--rounds", type=int, default=8, help="masking rounds over the held-out split (more scored tokens)")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    results = []
    for modality in args.only or sorted(RECIPES):
        r = run(modality, args.overrides, Path(args.out), args.rounds)
        results.append(r)
        print(json.dumps(r), flush=True)
    print(f"\n{'modality':9s} {'steps':>6s} {'acc':>7s} {'ppl':>8s} {'unigram acc':>12s} {'unigram ppl':>12s}")
    for r in results:
        print(
            f"{r['modality']:9s} {r['steps']:6d} {r['accuracy']:7.3f} {r['perplexity']:8.2f} "
            f"{r['unigram_accuracy']:12.3f} {r['unigram_perplexity']:12.2f}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
