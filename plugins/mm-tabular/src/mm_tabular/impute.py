"""Imputation: fill every missing cell of a table with the model's prediction.

Observed cells are never touched (CSV text is written back as it was read).
Rows are grouped by how many cells they lack, so each group hides exactly
that many tokens — the missing ones — and the encoder sees every observed
cell. Documented handling of awkward input:

* a categorical value unseen in training is kept as it is in the output, and
  the model treats it as missing when filling the row's other cells;
* a row with no observed cell gets each column's training mean (numeric) or
  most frequent category;
* a column entirely missing in the file is filled from the other columns
  (the model learnt it in training; a column with no value in the training
  split is refused by ``fit`` instead);
* a header-only file is refused (nothing to fill), as is a numeric cell
  outside float32's range (±inf, 1e308), naming file, row and column;
* a header that differs from the training columns (as a set) is an error
  naming the missing and unexpected columns; column order may differ.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import torch

from mmcore.contract import Tokens
from mmcore.errors import DataError

from .table_io import Table, read_table, write_table
from .masking import round_half_up
from .tokenizer import parse_number

CHUNK = 512
PASSES = 16  # stochastic re-masked passes averaged per missing cell (see predict_missing)
REMASK_BELOW = 0.25  # missing fraction under which imputation re-masks (see choose_passes)


def check_header(table: Table, columns: list[str]) -> list[int]:
    """Index in ``table`` of each model column; a different set of columns is a DataError."""
    missing = [c for c in columns if c not in table.columns]
    extra = [c for c in table.columns if c not in columns]
    if missing or extra:
        raise DataError(
            f"{table.path}: header does not match the model's training columns: missing {missing}, "
            f"unexpected {extra}; accepted: the columns {columns} in any order"
        )
    return [table.columns.index(c) for c in columns]


@torch.no_grad()
def predict_missing(model, rows: list[list[Any]], where: str, passes: int = PASSES, seed: int = 0) -> dict[tuple[int, int], float]:
    """{(row, model column): token value} for every void cell of ``rows`` (given in model column order).

    With ``passes`` > 1 and a re-masking model (``model.policy.ratio`` r > 0), each
    pass hides the missing cells *and* r of the observed ones (seeded, at least one
    observed cell stays visible), as in training, and the head outputs for the
    missing cells are averaged over the passes (numbers: mean; categories: mean
    logits, then argmax). ``passes=1`` shows the encoder every observed cell.
    """
    tok, device = model.tokenizer, next(model.parameters()).device
    model.eval()
    ratio = float(getattr(model.policy, "ratio", 0.0) or 0.0) if passes > 1 else 0.0
    generator = torch.Generator().manual_seed(seed)
    out: dict[tuple[int, int], float] = {}
    N = tok.num_columns
    for start in range(0, len(rows), CHUNK):
        items = [{"cells": r, "where": f"{where}, row {start + i + 1}"} for i, r in enumerate(rows[start : start + CHUNK])]
        batch = tok.collate(items)
        tokens = tok.tokenize({k: v.to(device) for k, v in batch.items()})
        void = ~batch["valid"] if "valid" in batch else torch.zeros(len(items), N, dtype=torch.bool)
        counts = void.sum(1)
        for m in sorted(set(counts.tolist()) - {0, N}):  # all-empty rows: see fill_empty
            sub = (counts == m).nonzero()[:, 0]
            part = Tokens(tokens.values[sub.to(device)], tokens.positions, None, tokens.meta)
            gap = void[sub]  # [b, N] the missing cells
            extra = min(round_half_up(ratio * (N - m)), N - m - 1)  # observed cells re-masked per pass
            total = None
            for _ in range(passes if extra > 0 else 1):
                hidden = gap.clone()
                if extra > 0:
                    noise = torch.rand(gap.shape, generator=generator).masked_fill(gap, 2.0)
                    hidden.scatter_(1, noise.argsort(dim=1)[:, :extra], True)
                pred, index = model.predict(part, hidden.to(device), m + extra)
                pred = pred.float()
                full = torch.zeros(pred.shape[0], N, pred.shape[-1], device=pred.device)
                full.scatter_(1, index[..., None].expand_as(pred), pred)  # [b, N, D] by column
                total = full if total is None else total + full
            index = gap.to(torch.int8).argsort(dim=1, descending=True, stable=True)[:, :m].to(device)  # missing first
            count = passes if extra > 0 else 1
            mean = total.gather(1, index[..., None].expand(-1, -1, total.shape[-1])) / count  # [b, m, D]
            values = model.target.to_values(mean, part, index)[..., 0].cpu()  # [b, m]
            for r, cols, vals in zip(sub.tolist(), index.cpu().tolist(), values.tolist()):
                for j, v in zip(cols, vals):
                    out[(start + r, j)] = v
    return out


def _format(value: Any, observed: list[Any]) -> Any:
    """A filled cell in the style of its column's observed cells (integers stay integers, text stays text)."""
    if isinstance(value, str):
        kind = next((type(c) for c in observed if c is not None), str)
        if kind in (int, float) and parse_number(value) is not None:
            return kind(float(value)) if kind is float else int(float(value))
        return value
    texts = [c for c in observed if c is not None]
    integer = texts and all(
        isinstance(c, int) and not isinstance(c, bool) or isinstance(c, str) and c.strip().lstrip("+-").isdigit() for c in texts
    )
    text = bool(texts) and isinstance(texts[0], str)  # no observed cell at all: a number (CSV writes it as text)
    if integer:
        value = int(round(value))
        return str(value) if text else value
    return f"{value:.6g}" if text else float(f"{value:.6g}")


def choose_passes(rows: list[list[Any]], policy: Any = None) -> int:
    """`PASSES` re-masked passes when under `REMASK_BELOW` of the cells are missing, else 1 (every observed
    cell shown): on sparse tables hiding more observed cells costs more than matching training gains.
    Always 1 for a policy that drew each row's share down to ``min_ratio``: it was trained to fill a
    cell from nearly all the others, so showing them all is what it learnt."""
    if getattr(policy, "min_ratio", None) is not None:
        return 1
    cells = sum(len(r) for r in rows)
    missing = sum(c is None for r in rows for c in r)
    return PASSES if cells and missing / cells < REMASK_BELOW else 1


def impute_table(model, table: Table, passes: int | None = None) -> tuple[Table, dict[str, int]]:
    """A copy of ``table`` with every missing cell filled; counts of what was done.
    ``passes`` None: `choose_passes` from the table's missing fraction."""
    tok = model.tokenizer
    where = table.path
    order = check_header(table, tok.columns)  # model column j is table column order[j]
    rows = [[row[k] for k in order] for row in table.rows]
    passes = choose_passes(rows, model.policy) if passes is None else passes
    predicted = predict_missing(model, rows, where, passes)
    filled = [list(r) for r in table.rows]
    columns_observed = [[r[k] for r in table.rows] for k in order]
    stats = {"filled": 0, "unseen_categories_kept": 0, "empty_rows": 0}
    for i, row in enumerate(rows):
        empty = all(c is None for c in row)
        stats["empty_rows"] += empty
        for j, cell in enumerate(row):
            if cell is not None:
                stats["unseen_categories_kept"] += tok.unseen(j, cell)
                continue
            value = 0.0 if empty else predicted[(i, j)]  # token value 0: the mean, or category 0 (the mode)
            filled[i][order[j]] = _format(tok.decode(j, value), columns_observed[j])
            stats["filled"] += 1
    return Table(table.path, list(table.columns), filled), stats


def impute_file(model, input_path: str, output_path: str) -> str:
    """``mm impute``: read, fill, write atomically; returns a one-line summary."""
    if Path(output_path).resolve() == Path(input_path).resolve():
        raise DataError(f"output {output_path} is the input file; accepted: a different path (the input is kept as is)")
    table = read_table(input_path)
    if not table.rows:
        raise DataError(f"{input_path} has no rows (only a header); accepted: a table with at least one data row to fill")
    table, stats = impute_table(model, table)
    write_table(table, output_path)
    if stats["unseen_categories_kept"]:
        print(
            f"mm impute: {stats['unseen_categories_kept']} categorical cell(s) hold values unseen in training; "
            "kept as they are and treated as missing when filling their rows",
            file=sys.stderr,
        )
    return (
        f"{output_path}: filled {stats['filled']} missing cell(s) in {len(table.rows)} rows "
        f"({stats['empty_rows']} empty row(s) got training means/modes)"
    )


def fit_on_table(path: str, recipe: str = "tabular-remask", run_dir: str | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Any:
    """``mm impute --fit``: train ``recipe`` on the table at ``path`` itself and return the trained model.

    Transductive, as ReMasker and scikit-learn's imputers are used: the missing cells are void in
    training and filled afterwards. The run goes to ``run_dir`` (default ``runs/impute-<stem>``; an
    earlier run there is moved aside, as ``mm train --overwrite``), so its model folder can be reused."""
    from mmcore import from_pretrained
    from mmcore.config import load_recipe
    from mmcore.executor import train

    rows = len(read_table(path).rows)
    if rows < 2:
        raise DataError(
            f"{path} has {rows} data row(s); mm impute --fit learns from the table itself and needs at "
            "least 2 rows (a few dozen to do better than the column means); accepted: a larger table, or "
            "mm impute MODEL with a model trained elsewhere"
        )
    run_dir = run_dir or str(Path("runs") / f"impute-{Path(path).stem}")
    cfg = load_recipe(
        recipe, [f"data.dataset={{name: file, path: {json.dumps(str(path))}}}", f"output_dir={json.dumps(run_dir)}", *overrides]
    )
    cfg.data.batch_size = min(cfg.data.batch_size, rows)  # a small table is one batch
    return from_pretrained(train(cfg, overwrite=True))
