"""Imputation quality of mmcore (ReMasker-style, mm-tabular) against classical imputers.

For each table that ships offline (sklearn's wine, breast_cancer, diabetes,
iris; palmerpenguins) and each rate in 10/30/50%, cells are removed completely
at random (seeded), then filled by:

* mmcore: `mm train` on the incomplete table itself (recipe tabular-remask,
  transductive as in ReMasker and as the sklearn imputers), then `mm impute`
  on the CSV file; the filled CSV is read back and scored;
* mean/mode; sklearn KNNImputer (k=5); sklearn IterativeImputer (BayesianRidge,
  10 rounds) — numeric columns standardised, categorical columns one-hot
  as k-1 dummies (all-NaN when missing; the last category scores 1 - their sum;
  argmax back to a category).

RMSE is on removed numeric cells in units of each column's standard deviation
(so columns are comparable); accuracy is on removed categorical cells.

    python benchmarks/imputation.py                 # everything (~15-30 min on 2 CPU cores)
    python benchmarks/imputation.py --tables iris --rates 0.3 --steps 300
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from mm_tabular import demo_table, impute_file, read_table, remove_cells, write_table
from mm_tabular.data import DEMO_TABLES
from mm_tabular.tokenizer import parse_number

RATES = (0.1, 0.3, 0.5)
METHODS = ("mmcore", "mean/mode", "knn", "iterative")


def column_kinds(table) -> list[bool]:
    """True for numeric columns of a complete demo table (numbers, not text)."""
    return [all(isinstance(r[j], (int, float)) and not isinstance(r[j], bool) for r in table.rows) for j in range(len(table.columns))]


def classical(method: str, rows: list[list], numeric: list[bool]) -> list[list]:
    """Fill ``rows`` (None = missing) with mean/mode, KNNImputer or IterativeImputer."""
    from sklearn.experimental import enable_iterative_imputer  # noqa: F401
    from sklearn.impute import IterativeImputer, KNNImputer

    blocks, decode = [], []
    for j, is_num in enumerate(numeric):
        col = [r[j] for r in rows]
        if is_num:
            x = np.array([np.nan if c is None else float(c) for c in col])
            mu, sd = np.nanmean(x), np.nanstd(x) or 1.0
            blocks.append(((x - mu) / sd)[:, None])
            decode.append(("num", mu, sd))
        else:
            cats = sorted({c for c in col if c is not None})
            # k-1 dummies (the last category is 1 - their sum): with all k one-hot columns, each is an exact
            # function of its siblings, and IterativeImputer stalls at the column means for missing rows
            dummies = np.array([[np.nan] * (len(cats) - 1) if c is None else [float(c == k) for k in cats[:-1]] for c in col])
            blocks.append(dummies.reshape(len(col), len(cats) - 1))
            decode.append(("cat", cats, None))
    matrix = np.concatenate(blocks, axis=1)
    if method == "mean/mode":
        filled = np.where(np.isnan(matrix), np.nanmean(matrix, axis=0), matrix)
    elif method == "knn":
        filled = KNNImputer(n_neighbors=5).fit_transform(matrix)
    else:
        filled = IterativeImputer(max_iter=10, random_state=0).fit_transform(matrix)
    out, start = [list(r) for r in rows], 0
    for j, (kind, a, b) in enumerate(decode):
        width = 1 if kind == "num" else len(a) - 1
        part = filled[:, start : start + width]
        if kind == "cat":
            part = np.concatenate([part, 1.0 - part.sum(axis=1, keepdims=True)], axis=1)  # back to k scores
        for i, r in enumerate(out):
            if r[j] is None:
                r[j] = part[i, 0] * b + a if kind == "num" else a[int(np.argmax(part[i]))]
        start += width
    return out


def mmcore_impute(incomplete, workdir: Path, steps: int | None, seed: int, overrides: list[str] = ()) -> list[list]:
    """Train the tabular-remask recipe on the incomplete CSV, then `mm impute` it; the filled cells."""
    from mmcore.config import load_recipe
    from mmcore.plugins import get_registry
    from mmcore.executor import train

    data = workdir / "incomplete.csv"
    write_table(incomplete, data)
    recipe = yaml.safe_load(Path(get_registry().recipe("tabular-remask")).read_text())
    recipe["data"]["dataset"] = {"name": "file", "path": str(data)}
    recipe["output_dir"] = str(workdir / "run")
    if steps:  # else the recipe's own budget (its epochs: passes over the table)
        recipe["train"].update(steps=steps, epochs=0)
    recipe["train"].update(seed=seed, log_every=100, checkpoint_every=10**9)  # one checkpoint, at the end
    (workdir / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        folder = train(load_recipe(workdir / "recipe.yaml", list(overrides)), overwrite=True)
        from mmcore import from_pretrained

        model = from_pretrained(str(folder))
        impute_file(model, str(data), str(workdir / "filled.csv"))
        from mm_tabular.impute import PASSES, impute_table

        variants = {f"passes={p}": impute_table(model, read_table(data), passes=p)[0].rows for p in (1, PASSES)}
    return read_table(workdir / "filled.csv").rows, variants


def score(full, filled: list[list], removed, numeric, sds) -> tuple[float, float]:
    sq, n, hit, m = 0.0, 0, 0, 0
    for i, j in removed:
        if numeric[j]:
            sq += ((parse_number(filled[i][j]) - full.rows[i][j]) / sds[j]) ** 2
            n += 1
        else:
            hit += str(filled[i][j]).strip() == str(full.rows[i][j])
            m += 1
    return (math.sqrt(sq / n) if n else float("nan")), (hit / m if m else float("nan"))


def run(tables, rates, steps: int | None, seed: int, methods=METHODS, overrides: list[str] = ()) -> list[dict]:
    results = []
    for name in tables:
        full = demo_table(name)
        numeric = column_kinds(full)
        sds = [float(np.std([r[j] for r in full.rows])) or 1.0 if numeric[j] else 1.0 for j in range(len(numeric))]
        for rate in rates:
            incomplete, removed = remove_cells(full, rate, seed)
            row = {"table": name, "rate": rate, "rows": len(full.rows), "columns": len(full.columns)}
            for method in methods:
                tick = time.perf_counter()
                if method == "mmcore":
                    with tempfile.TemporaryDirectory() as tmp:
                        filled, variants = mmcore_impute(incomplete, Path(tmp), steps, seed, overrides)
                    for key, rows in variants.items():  # both inference modes of the same model, for the record
                        rmse, acc = score(full, rows, removed, numeric, sds)
                        row[f"mmcore {key}"] = {"rmse": rmse, "acc": acc}
                else:
                    filled = classical(method, incomplete.rows, numeric)
                rmse, acc = score(full, filled, removed, numeric, sds)
                row[method] = {"rmse": rmse, "acc": acc, "seconds": time.perf_counter() - tick}
            results.append(row)
            print(json.dumps(row), flush=True)
    return results


def markdown(results: list[dict]) -> str:
    methods = [m for m in METHODS if m in results[0]]
    lines = [
        "| table | missing | " + " | ".join(f"{m} RMSE" for m in methods) + " | " + " | ".join(f"{m} acc" for m in methods) + " |",
        "|---|---|" + "---|" * (2 * len(methods)),
    ]
    for r in results:
        fmt = lambda v: "–" if v != v else f"{v:.3f}"  # noqa: E731
        lines.append(
            f"| {r['table']} | {r['rate']:.0%} | "
            + " | ".join(fmt(r[m]["rmse"]) for m in methods)
            + " | "
            + " | ".join(fmt(r[m]["acc"]) for m in methods)
            + " |"
        )
    return "\n".join(lines)


def summary(results: list[dict]) -> str:
    """Where mmcore beats mean/mode, and its average ratio to the best classical baseline."""
    rmse_ratio, acc_ratio, beats = [], [], []
    for r in results:
        mm, base = r["mmcore"], [r[m] for m in METHODS[1:]]
        if mm["rmse"] == mm["rmse"]:
            rmse_ratio.append(mm["rmse"] / min(b["rmse"] for b in base))
            beats.append(mm["rmse"] < r["mean/mode"]["rmse"])
        if mm["acc"] == mm["acc"]:
            acc_ratio.append(mm["acc"] / max(b["acc"] for b in base))
            beats.append(mm["acc"] > r["mean/mode"]["acc"])
    return (
        f"mmcore beats mean/mode in {sum(beats)}/{len(beats)} comparisons; "
        f"mean RMSE ratio to the best baseline {np.mean(rmse_ratio):.3f} (lower is better; #14 asks <= 1.0); "
        f"mean accuracy ratio to the best baseline {np.mean(acc_ratio):.3f} (higher is better)"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tables", nargs="*", default=list(DEMO_TABLES))
    parser.add_argument("--rates", nargs="*", type=float, default=list(RATES))
    parser.add_argument("--steps", type=int, default=None, help="training steps of each mmcore model (default: the recipe's 200 epochs)")
    parser.add_argument("--ratio", type=float, default=None, help="re-mask ratio (default: the recipe's)")
    parser.add_argument("--set", action="append", default=[], help="recipe override for mmcore, e.g. train.base_lr=2e-3")
    parser.add_argument("--methods", nargs="*", default=list(METHODS), choices=METHODS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    overrides = args.set + ([f"model.masking.ratio={args.ratio}"] if args.ratio is not None else [])
    results = run(args.tables, args.rates, args.steps, args.seed, args.methods, overrides)
    print(markdown(results))
    if "mmcore" in args.methods and len(args.methods) > 1:
        print(summary(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    sys.exit(main())
