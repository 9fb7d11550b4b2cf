"""Variant effect scores of a masked protein language model, as ESM-1v defines them (Meier et al. 2021).

For a substitution wt → mt at position i (multi-mutants sum over their positions):

* ``wt_marginal``     log p(mt) − log p(wt) at i, the encoder seeing the unmasked wild type:
  one forward per wild type, shared by every mutation of it;
* ``masked_marginal`` the same with position i masked: one forward per mutated position, shared
  by every mutation there (a full single-mutant scan of L residues: L forwards for 19·L variants);
* ``pll``             pseudo-log-likelihood Σ_i log p(x_i | x with i masked) of a whole sequence:
  one forward per position per sequence, so it is for short lists of variants.

A "forward" is one sequence row through the encoder; rows go through the model in batches.
Sequences longer than the model's ``max_length`` W are read in windows of W that overlap by
half: each position is scored in the window where it sits most centrally, the same window for
every score, so the wild-type marginal then needs about 2·L/W forwards instead of one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from mmcore.errors import DataError

from .alphabet import ID, RESIDUES, TOKENS

BATCH_SIZE = 32  # rows per forward pass
AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"  # what a mutation may introduce
SCORES = ("wt_marginal", "masked_marginal", "pll")
MUTATION = re.compile(r"([A-Za-z])(\d+)([A-Za-z])")
FORM = "accepted: WT letter, 1-based position, MT letter (A23V); multi-mutants joined by ':' (A23V:K45R)"


@dataclass(frozen=True)
class Variant:
    """A named set of substitutions (position 0-based, wild-type letter, mutant letter) of one wild type."""

    name: str
    changes: tuple[tuple[int, str, str], ...]

    def apply(self, wildtype: str) -> str:
        seq = list(wildtype)
        for pos, _, mt in self.changes:
            seq[pos] = mt
        return "".join(seq)


def parse_mutation(text: str, wildtype: str) -> Variant:
    """``A23V`` or ``A23V:K45R`` checked against ``wildtype``; a mistake is a one-line DataError naming it."""
    changes, seen = [], set()
    for part in text.split(":"):
        m = MUTATION.fullmatch(part.strip())
        if m is None:
            raise DataError(f"mutation {text!r}: {part!r} is not a substitution; {FORM}")
        wt, pos, mt = m[1].upper(), int(m[2]), m[3].upper()
        for letter, allowed in ((wt, RESIDUES), (mt, AMINO_ACIDS)):
            if letter not in allowed:
                raise DataError(
                    f"mutation {text!r}: {letter!r} is not an amino acid; accepted: "
                    f"{' '.join(allowed)}" + (" (what a mutation introduces)" if allowed == AMINO_ACIDS else "")
                )
        if not 1 <= pos <= len(wildtype):
            raise DataError(
                f"mutation {text!r}: position {pos} is outside the wild type of {len(wildtype)} residues; "
                f"accepted: positions 1-{len(wildtype)}"
            )
        if wildtype[pos - 1] != wt:
            found = wildtype[pos - 1]
            raise DataError(
                f"mutation {text!r}: the wild type holds {found!r} at position {pos}, not {wt!r}; "
                f"accepted: the wild-type residue first ({found}{pos}{mt})"
            )
        if pos in seen:
            raise DataError(f"mutation {text!r}: position {pos} is mutated twice; accepted: each position once")
        seen.add(pos)
        changes.append((pos - 1, wt, mt))
    return Variant(text, tuple(changes))


def differences(name: str, sequence: str, wildtype: str) -> Variant:
    """The substitutions that turn ``wildtype`` into ``sequence`` (same length: no insertions or deletions)."""
    if len(sequence) != len(wildtype):
        raise DataError(
            f"record {name!r} has {len(sequence)} residues, the wild type {len(wildtype)}; accepted: "
            "variants of the wild type's length (substitutions only)"
        )
    changes = tuple((i, w, s) for i, (w, s) in enumerate(zip(wildtype, sequence)) if w != s)
    return Variant(name, changes)


# -- windows -------------------------------------------------------------------------


def window_starts(length: int, width: int) -> list[int]:
    """Starts of windows of ``width`` covering ``length`` residues, overlapping by half (one if it fits)."""
    if length <= width:
        return [0]
    return sorted(set(range(0, length - width, max(1, width // 2))) | {length - width})


def window_of(pos: int, starts: list[int], width: int) -> int:
    """The start of the window in which ``pos`` is farthest from an edge (same for every score)."""
    return max(starts, key=lambda s: min(pos - s, s + width - 1 - pos) if s <= pos < s + width else -1)


# -- forwards ------------------------------------------------------------------------


@torch.no_grad()
def read_logps(model, rows: list[tuple[Tensor, Tensor]], batch_size: int = BATCH_SIZE) -> list[Tensor]:
    """Log-probabilities [len(at), V] at positions ``at`` of each row (ids shown, ascending positions),
    through the model's own BERT path (`MaskedModel.predict`) in batches of ``batch_size`` rows.

    The ids are shown as given (``<mask>`` where the caller masked), so the same call serves the
    unmasked wild-type forward and the masked ones."""
    model.eval()
    tok, out = model.tokenizer, []
    if getattr(tok, "ends", False):  # the model reads <cls> residues <eos>: positions shift by one
        rows = [(torch.from_numpy(tok.wrap(ids.numpy())), at + 1) for ids, at in rows]
    for b in range(0, len(rows), batch_size):
        chunk = rows[b : b + batch_size]
        width = max(len(ids) for ids, _ in chunk)
        ids = torch.full((len(chunk), width), tok.pad_id, dtype=torch.long)
        valid = torch.zeros((len(chunk), width), dtype=torch.bool)
        read = torch.zeros_like(valid)
        for r, (row, at) in enumerate(chunk):
            ids[r, : len(row)], valid[r, : len(row)] = row, True
            read[r, at] = True
        tokens = tok.tokenize({"ids": ids} if valid.all() else {"ids": ids, "valid": valid})
        seen = replace(tokens, meta={**tokens.meta, "corrupted": True})  # show the ids as they are
        pred, _ = model.predict(tokens, read, int(read.sum(1).max()), seen=seen)  # slots: read positions, ascending
        logp = pred.float().log_softmax(dim=-1)
        out += [logp[r, : len(at)] for r, (_, at) in enumerate(chunk)]
    return out


def window_width(model) -> int:
    """Residues one row holds: ``max_length``, less <cls> and <eos> when the tokenizer adds them."""
    return getattr(model.tokenizer, "max_residues", model.tokenizer.max_length)


def encode(model, sequence: str) -> Tensor:
    return torch.from_numpy(model.tokenizer.ids(sequence)).long()


def unmasked_logps(model, wildtype: str, positions, batch_size: int = BATCH_SIZE) -> dict[int, Tensor]:
    """log p(· | unmasked wild type) [V] at each position: one forward per window (one if it fits)."""
    ids, width = encode(model, wildtype), window_width(model)
    starts = window_starts(len(ids), width)
    needed = sorted({window_of(p, starts, width) for p in positions})
    rows = [(ids[s : s + width], torch.arange(min(width, len(ids) - s))) for s in needed]
    logps = dict(zip(needed, read_logps(model, rows, batch_size)))
    return {p: logps[window_of(p, starts, width)][p - window_of(p, starts, width)] for p in positions}


def masked_logps(model, sequence: str, positions, batch_size: int = BATCH_SIZE) -> dict[int, Tensor]:
    """log p(· | sequence with that position masked) [V] at each position: one forward per position."""
    ids, width = encode(model, sequence), window_width(model)
    starts, rows, positions = window_starts(len(ids), width), [], sorted(set(positions))
    for p in positions:
        s = window_of(p, starts, width)
        row = ids[s : s + width].clone()
        row[p - s] = model.tokenizer.mask_id
        rows.append((row, torch.tensor([p - s])))
    return {p: logp[0] for p, logp in zip(positions, read_logps(model, rows, batch_size))}


def marginal(logps: dict[int, Tensor], variant: Variant) -> float:
    return sum(float(logps[p][ID[mt]] - logps[p][ID[wt]]) for p, wt, mt in variant.changes)


def pseudo_log_likelihood(model, sequence: str, batch_size: int = BATCH_SIZE) -> float:
    """Σ_i log p(x_i | x with i masked): one forward per position."""
    logps = masked_logps(model, sequence, range(len(sequence)), batch_size)
    return sum(float(logps[i][ID[c]]) for i, c in enumerate(sequence))


def score_variants(
    model,
    wildtype: str | None,
    variants: list[Variant],
    scores: tuple[str, ...],
    sequences: list[str] | None = None,
    batch_size: int = BATCH_SIZE,
) -> list[dict[str, float]]:
    """The requested ``scores`` of each variant: marginals against ``wildtype``, pll of the variant's
    sequence (``sequences``, default: the variant applied to ``wildtype``)."""
    rows: list[dict[str, float]] = [{} for _ in variants]
    positions = sorted({p for v in variants for p, _, _ in v.changes})
    if "wt_marginal" in scores:
        logps = unmasked_logps(model, wildtype, positions, batch_size)
        for row, v in zip(rows, variants):
            row["wt_marginal"] = marginal(logps, v)
    if "masked_marginal" in scores:
        logps = masked_logps(model, wildtype, positions, batch_size)
        for row, v in zip(rows, variants):
            row["masked_marginal"] = marginal(logps, v)
    if "pll" in scores:
        for row, seq in zip(rows, sequences or [v.apply(wildtype) for v in variants]):
            row["pll"] = pseudo_log_likelihood(model, seq, batch_size)
    return rows


def letters(model, sequence: str, name: str = "sequence") -> str:
    """The sequence as the model's alphabet spells it (upper case, checked: no <mask>)."""
    ids = model.tokenizer.ids("".join(sequence.split()).upper(), name)
    if (ids == model.tokenizer.mask_id).any():
        raise DataError(f"{name} holds <mask>; accepted: a whole sequence of amino acids to score")
    return "".join(TOKENS[i] for i in ids)
