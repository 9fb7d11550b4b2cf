"""``mm score``: variant effect scores of a protein model as CSV (registered in ``__init__``)."""

from __future__ import annotations

import contextlib
import csv
import sys
import time
from pathlib import Path

from mmcore.commands import Command
from mmcore.errors import DataError, MMCoreError

from .fasta import parse_fasta
from .score import BATCH_SIZE, SCORES, Variant, differences, letters, parse_mutation, score_variants

NAMES = {s.replace("_", "-"): s for s in SCORES}  # on the command line: wt-marginal, masked-marginal, pll


def _configure(p) -> None:
    p.add_argument("model", help="a protein model folder or Hub repo id (BERT style)")
    p.add_argument(
        "--mutations", help="substitutions of --wildtype, comma-separated (A23V,K45R:L46M; 1-based) or a file of them, one or more a line"
    )
    p.add_argument(
        "--fasta", help="a FASTA file of sequences to score (pll; with --wildtype also the marginals of each record's differences from it)"
    )
    p.add_argument("--wildtype", help="the wild-type sequence, or a FASTA file holding it as its only record")
    p.add_argument(
        "--scores",
        help="comma-separated, of wt-marginal, masked-marginal, pll (default: the two "
        "marginals for --mutations; pll, and the marginals with --wildtype, for --fasta)",
    )
    p.add_argument("--batch-size", type=int, default=BATCH_SIZE, help=f"sequence rows per forward pass; default {BATCH_SIZE}")
    p.add_argument("-o", "--output", help="CSV file to write (default: standard output)")


def read_wildtype(model, text: str) -> str:
    if Path(text).is_file():
        records = parse_fasta(Path(text))
        if len(records) != 1:
            raise DataError(f"--wildtype {text}: holds {len(records)} records; accepted: a FASTA file of one record")
        return letters(model, records[0].sequence, f"--wildtype {text}: record {records[0].name!r}")
    return letters(model, text, "--wildtype")


def read_mutations(text: str) -> list[str]:
    source = Path(text).read_text() if Path(text).is_file() else text
    return [m for m in source.replace(",", " ").split() if m]


def chosen_scores(args) -> tuple[str, ...]:
    if args.scores is None:
        return (
            ("wt_marginal", "masked_marginal")
            if args.mutations
            else ("pll", "wt_marginal", "masked_marginal")
            if args.wildtype
            else ("pll",)
        )
    names = [s.strip() for s in args.scores.split(",") if s.strip()]
    for s in names:
        if s not in NAMES:
            raise MMCoreError(f"--scores: {s!r} is unknown; accepted: {', '.join(NAMES)}")
    return tuple(NAMES[s] for s in names)


def _run(args) -> None:
    from mmcore import from_pretrained

    if bool(args.mutations) == bool(args.fasta):
        raise MMCoreError("mm score: give --mutations (with --wildtype) or --fasta FILE (one of them)")
    if args.batch_size < 1:
        raise MMCoreError(f"--batch-size {args.batch_size} is invalid; accepted: an integer >= 1")
    scores = chosen_scores(args)
    if not args.wildtype and (args.mutations or set(scores) - {"pll"}):
        raise MMCoreError("mm score: --mutations and the marginal scores need --wildtype SEQUENCE|FILE")
    model = from_pretrained(args.model)
    if getattr(model, "modality", None) is None or model.modality.name != "protein" or model.style != "bert":
        raise MMCoreError(
            f"mm score: {args.model} is not a BERT-style protein model; accepted: a model trained "
            "with modality protein and style bert (e.g. mm train protein-mlm)"
        )
    wildtype = read_wildtype(model, args.wildtype) if args.wildtype else None
    if args.mutations:
        variants = [parse_mutation(m, wildtype) for m in read_mutations(args.mutations)]
        if not variants:
            raise MMCoreError(f"--mutations {args.mutations!r}: no mutation given; accepted: e.g. A23V,K45R:L46M")
        sequences, first = [v.apply(wildtype) for v in variants], {"mutation": [v.name for v in variants]}
    else:
        records = parse_fasta(Path(args.fasta))
        if not records:
            raise DataError(f"{args.fasta}: no FASTA record; accepted: records of a '>' header and a sequence")
        sequences = [letters(model, r.sequence, f"{args.fasta}: record {r.name!r}") for r in records]
        first = {"id": [r.name for r in records]}
        variants = [differences(r.name, s, wildtype) if wildtype else Variant(r.name, ()) for r, s in zip(records, sequences)]
        if wildtype:
            first["mutations"] = [":".join(f"{w}{p + 1}{m}" for p, w, m in v.changes) for v in variants]
    start = time.perf_counter()
    rows = score_variants(model, wildtype, variants, scores, sequences, args.batch_size)
    write_csv(args.output, first, scores, rows)
    print(f"mm score: {len(rows)} variants scored ({', '.join(scores)}) in {time.perf_counter() - start:.1f} s", file=sys.stderr)


def write_csv(path: str | None, first: dict[str, list[str]], scores: tuple[str, ...], rows: list[dict]) -> None:
    with open(path, "w", newline="") if path else contextlib.nullcontext(sys.stdout) as out:
        writer = csv.writer(out)
        writer.writerow([*first, *scores])
        for i, row in enumerate(rows):
            writer.writerow([*(col[i] for col in first.values()), *(f"{row[s]:.5f}" for s in scores)])


SCORE_COMMAND = Command(
    name="score",
    help="score protein variants (wild-type marginal, masked marginal, pseudo-log-likelihood) as CSV",
    usage="mm score MODEL --wildtype SEQ|FILE --mutations A23V,K45R:L46M|FILE [--scores ...] [-o out.csv] | "
    "mm score MODEL --fasta variants.fa [--wildtype SEQ|FILE] [--scores ...] [-o out.csv]",
    configure=_configure,
    run=_run,
    examples=(
        "mm score runs/protein-mlm/model --wildtype MKTAYIAKQRQISF --mutations K2R,A4V,T3S:Y5F -o scores.csv",
        "mm score runs/protein-mlm/model --wildtype wt.fa --mutations mutations.txt --scores masked-marginal",
        "mm score runs/protein-mlm/model --fasta variants.fa --wildtype wt.fa -o scores.csv",
    ),
)
