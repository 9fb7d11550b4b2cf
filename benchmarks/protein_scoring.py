"""Variant scoring (`mm score`) of a trained protein model, checked on held-out proteins of the demo set.

(a) For N held-out proteins (the "test" split of a demo corpus, from the registry; by default the
    hemopexin family the protein-mlm recipe trains on): at each position a
    random substitution is drawn; the wild-type residue "outranks" it when its score is better, i.e.
    the substitution's wild-type marginal or masked marginal is < 0, or the wild type's
    pseudo-log-likelihood exceeds the single mutant's (PLL on a sample of positions: it costs one
    forward per residue per sequence).
(b) Full single-mutant scans (19 · L variants): of the longest held-out protein of that corpus, and
    of the held-out protein of the demo proteome closest to 300 residues (the family's domains are
    about 45 long): Spearman between the masked-marginal and wild-type-marginal scores, and the wall
    time of each (forwards = sequence rows through the encoder, in batches).

The wild-type marginal sees the wild-type residue it scores, so (a) is nearly trivial for it; the
composition baseline (the more frequent amino acid of the training split wins) is what a model that
learned no context would reach under the masked scores.

    OMP_NUM_THREADS=2 python benchmarks/protein_scoring.py runs/protein-mlm/model
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections import Counter
from pathlib import Path

import torch
from scipy.stats import spearmanr

from mmcore import from_pretrained
from mmcore.plugins import get_registry
from mm_protein.score import AMINO_ACIDS, BATCH_SIZE, Variant, pseudo_log_likelihood, score_variants, window_of, window_starts

OUT = Path(__file__).parent / "results" / "protein-scoring.json"


def split(model, name: str, corpus: str) -> list:
    dataset = get_registry().dataset("protein", "demo")(corpus=corpus).build(model.tokenizer, name)
    return [r for r in dataset.records if set(r.sequence) <= set(AMINO_ACIDS)]


def forwards_of(model, fn):
    """(result, rows through the encoder, batches, seconds) of ``fn()``."""
    rows, forward = [], model.forward_bert
    model.forward_bert = lambda tokens, *a, **k: rows.append(tokens.values.shape[0]) or forward(tokens, *a, **k)
    try:
        start = time.perf_counter()
        result = fn()
        return result, sum(rows), len(rows), time.perf_counter() - start
    finally:
        del model.forward_bert


def outranking(model, proteins, pll_positions: int, rng: random.Random, composition: Counter) -> dict:
    """``composition``: residue counts of the training split, a context-free baseline (the wild-type
    letter outranks the substitution when it is the more frequent amino acid)."""
    wins = {"wt_marginal": [], "masked_marginal": [], "pll": [], "composition_baseline": []}
    for record in proteins:
        wt = record.sequence
        subs = [Variant(f"{w}{i + 1}{m}", ((i, w, m),)) for i, w in enumerate(wt) for m in [rng.choice(AMINO_ACIDS.replace(w, ""))]]
        scores = score_variants(model, wt, subs, ("wt_marginal", "masked_marginal"))
        for s in ("wt_marginal", "masked_marginal"):
            wins[s] += [row[s] < 0 for row in scores]
        wins["composition_baseline"] += [composition[w] > composition[m] for v in subs for _, w, m in v.changes]
        wt_pll = pseudo_log_likelihood(model, wt)
        for v in rng.sample(subs, min(pll_positions, len(subs))):
            wins["pll"].append(wt_pll > pseudo_log_likelihood(model, v.apply(wt)))
    return {s: {"fraction": round(sum(w) / len(w), 4), "positions": len(w)} for s, w in wins.items()}


def scan(model, proteins, target_length: int) -> dict:
    record = min(proteins, key=lambda r: abs(len(r.sequence) - target_length))
    wt, width = record.sequence, model.tokenizer.max_length
    variants = [Variant(f"{w}{i + 1}{m}", ((i, w, m),)) for i, w in enumerate(wt) for m in AMINO_ACIDS if m != w]
    out = {
        "protein": record.name,
        "length": len(wt),
        "variants": len(variants),
        "max_length": width,
        "windows": len({window_of(p, window_starts(len(wt), width), width) for p in range(len(wt))}),
    }
    scores = {}
    for name in ("wt_marginal", "masked_marginal"):
        rows, forwards, batches, seconds = forwards_of(model, lambda n=name: score_variants(model, wt, variants, (n,)))
        scores[name] = [r[name] for r in rows]
        out[name] = {"forwards": forwards, "batches": batches, "seconds": round(seconds, 3)}
    out["spearman_masked_vs_wt_marginal"] = round(float(spearmanr(scores["masked_marginal"], scores["wt_marginal"])[0]), 4)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", default="runs/protein-mlm/model")
    parser.add_argument("--proteins", type=int, default=40, help="held-out proteins for (a)")
    parser.add_argument("--pll-positions", type=int, default=5, help="PLL comparisons per protein in (a)")
    parser.add_argument("--corpus", default="hemopexin", help="demo corpus of (a) and the first scan of (b)")
    parser.add_argument("--scan-corpus", default="proteome", help="demo corpus of the second scan of (b)")
    parser.add_argument("--scan-length", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-o", "--output", default=str(OUT))
    args = parser.parse_args()
    model = from_pretrained(args.model).eval()
    proteins = split(model, "test", args.corpus)
    composition = Counter("".join(r.sequence for r in split(model, "train", args.corpus)))
    rng = random.Random(args.seed)
    chosen = rng.sample(proteins, min(args.proteins, len(proteins)))
    start = time.perf_counter()
    result = {
        "model": args.model,
        "corpus": args.corpus,
        "max_length": model.tokenizer.max_length,
        "torch_threads": torch.get_num_threads(),
        "batch_size": BATCH_SIZE,
        "held_out_proteins": len(proteins),
        "seed": args.seed,
        "outranking": {
            "proteins": len(chosen),
            "residues": sum(len(r.sequence) for r in chosen),
            **outranking(model, chosen, args.pll_positions, rng, composition),
        },
        "family_scan": scan(model, proteins, max(len(r.sequence) for r in proteins)),
        "scan": scan(model, split(model, "test", args.scan_corpus), args.scan_length),
    }
    result["seconds"] = round(time.perf_counter() - start, 1)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
