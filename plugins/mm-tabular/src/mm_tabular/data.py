"""Datasets: a CSV/parquet file, and the small tables that ship offline (sklearn, palmerpenguins)."""

from __future__ import annotations

import functools
import json
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from torch.utils.data import Dataset

from mmcore.contract import check_split
from mmcore.errors import ConfigError, DataError
from mmcore.records import as_int, as_text
from mmcore.records import field as record_field
from mmcore.splits import check_test_fraction, split_indices

from .table_io import Table, _plain, is_missing, read_table

DEMO_TABLES = ("wine", "breast_cancer", "diabetes", "iris", "penguins")


class TableRows(Dataset):
    """Rows of one table; items are what `TableTokenizer.collate` takes. ``numbers`` are the
    rows' 1-based positions in the source, so errors name the row a person can find."""

    def __init__(self, table: Table, keep: list[int]) -> None:
        self.source, self.columns = table.path, table.columns
        self.rows = [table.rows[i] for i in keep]
        self.numbers = [i + 1 for i in keep]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict:
        return {"cells": self.rows[i], "where": f"{self.source}, row {self.numbers[i]}", "label": -1}


def remove_cells(table: Table, fraction: float, seed: int) -> tuple[Table, list[tuple[int, int]]]:
    """Blank ``fraction`` of the observed cells completely at random (seeded): (new table, removed (row, col))."""
    observed = [(i, j) for i, row in enumerate(table.rows) for j, c in enumerate(row) if c is not None]
    removed = sorted(random.Random(seed).sample(observed, int(round(fraction * len(observed)))))
    rows = [list(r) for r in table.rows]
    for i, j in removed:
        rows[i][j] = None
    return Table(table.path, list(table.columns), rows), removed


@functools.cache
def demo_table(name: str) -> Table:
    """A complete table that ships with an installed package: sklearn's wine, breast_cancer,
    diabetes and iris (class labels as category names), palmerpenguins (rows with gaps dropped)."""
    if name == "penguins":
        try:
            from palmerpenguins import load_penguins
        except ImportError:
            raise ConfigError("the penguins table needs palmerpenguins: pip install 'mm-tabular[penguins]'") from None
        frame = load_penguins().dropna().reset_index(drop=True)
        frame["year"] = frame["year"].astype(str)  # three study years: a category, not a quantity
    elif name in ("wine", "breast_cancer", "diabetes", "iris"):
        from sklearn import datasets

        bunch = getattr(datasets, f"load_{name}")(as_frame=True)
        frame = bunch.frame.copy()
        if name != "diabetes":  # classification sets: the class is a categorical column
            frame["target"] = [str(bunch.target_names[t]) for t in bunch.target]
    else:
        raise ConfigError(f"demo table {name!r} is unknown; accepted: {', '.join(DEMO_TABLES)}")
    rows = [[v.item() if hasattr(v, "item") else v for v in row] for row in frame.itertuples(index=False, name=None)]
    return Table(f"{name} (demo)", [str(c) for c in frame.columns], rows)


@dataclass
class DemoTable:
    """A table shipped offline; ``missing_fraction`` of its cells blanked at random (seeded) to impute."""

    table: str = "wine"
    missing_fraction: float = 0.3
    seed: int = 0
    test_fraction: float = 0.0

    def __post_init__(self) -> None:
        if self.table not in DEMO_TABLES:
            raise ConfigError(f"data.dataset.table {self.table!r} is unknown; accepted: {', '.join(DEMO_TABLES)}")
        if not 0.0 <= self.missing_fraction < 1.0:
            raise ConfigError(f"data.dataset.missing_fraction {self.missing_fraction!r} is out of range; accepted: 0 <= x < 1")
        check_test_fraction(self.test_fraction)

    def build(self, tokenizer, split: str) -> Dataset:
        check_split(split)
        table, _ = remove_cells(demo_table(self.table), self.missing_fraction, self.seed)
        return TableRows(table, split_indices(len(table.rows), self.test_fraction, split, rng="python"))


@dataclass
class TableFile:
    """A CSV/TSV/parquet file with a header row; missing cells are what imputation fills.

    Imputation is transductive (as in ReMasker): train on the incomplete table
    itself and keep ``test_fraction`` 0, or hold rows out to watch the loss.
    """

    path: str = "???"
    test_fraction: float = 0.0

    def __post_init__(self) -> None:
        check_test_fraction(self.test_fraction)

    def build(self, tokenizer, split: str) -> Dataset:
        check_split(split)
        if not self.path or self.path == "???":
            raise ConfigError("data.dataset.path is required; accepted: a .csv or .parquet file, e.g. data.dataset.path=data.csv")
        table = read_table(self.path)
        if not table.rows:
            raise DataError(f"table {self.path} has a header but no rows; accepted: at least one data row")
        return TableRows(table, split_indices(len(table.rows), self.test_fraction, split, rng="python"))


LABEL_FIELDS = ("label", "cls")


def _json_row(value: Any, name: str) -> Mapping:
    """A row given as one JSON object (a webdataset ``json`` member, or a struct column)."""
    if isinstance(value, Mapping):
        return value
    text = as_text(value, name)
    try:
        row = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise DataError(
            f"field {name!r} is not JSON ({getattr(exc, 'msg', 'nested too deeply')}); accepted: one JSON object, column name → cell"
        ) from None
    if not isinstance(row, dict):
        raise DataError(f"field {name!r} holds a JSON {type(row).__name__}; accepted: one JSON object, column name → cell")
    return row


def _cell(value: Any, column: str) -> Any:
    """One cell as `read_table` keeps it: None when missing (None, '', NA, NaN, ...), text, or a Python number."""
    if isinstance(value, (bytes, bytearray)):
        value = as_text(value, column)  # a webdataset member per column holds the cell's text
    if isinstance(value, (Mapping, list, tuple, set)) or getattr(value, "ndim", 0):
        raise DataError(
            f"field {column!r} is a {type(value).__name__}; accepted: one cell (a number, text, a bool, or None / empty for a missing cell)"
        )
    return None if is_missing(value) else _plain(value)


def _raw_row(record: Mapping, where: str) -> dict:
    """A record as a raw row for `TableTokenizer.fit` (the tokenizer is unfitted, so its columns are not known):
    ``{"row": {field: cell}, "where", "label"}``. The row is the record's fields, or its ``json`` field's
    object when that is its only one; ``__key__``-style metadata and the label fields are no columns."""

    def fields(mapping: Mapping) -> list[str]:
        return [str(k) for k in mapping if not str(k).startswith("__") and k not in LABEL_FIELDS]

    row = record
    if fields(record) == ["json"]:
        row = _json_row(record["json"], "json")
    names = fields(row)
    if not names:
        found = ", ".join(sorted(str(k) for k in row if not str(k).startswith("__"))) or "none"
        raise DataError(
            f"the record holds no column (its fields: {found}); accepted: one field per column "
            "(column name → cell), or a 'json' field holding such an object"
        )
    label_name, label = record_field(record, LABEL_FIELDS, required=False)
    return {
        "row": {name: _cell(row[name], name) for name in names},
        "where": where,
        "label": -1 if label_name is None else as_int(label, label_name),
    }


def from_record(tokenizer, record, generator=None) -> dict:
    """A streamed record, one row, as `TableRows`' sample ``{"cells", "where", "label"}`` (`Modality.from_record`).

    Reads one field per column of the tokenizer (column name → cell: a number, text or, from a tar
    shard, its text as bytes), or, when the record holds none of them, a ``json`` field holding the
    row as one JSON object. A column the record lacks, and a missing value (None, empty, NA, NaN),
    is a missing cell. Every cell is encoded here, so a bad one is an error naming its column. Label:
    ``label`` or ``cls`` when not a column (-1 otherwise). Nothing is random.

    With the tokenizer not fitted yet (no ``model.tokenizer.columns``) the columns are not known: the
    sample is the raw row ``{"row": {field: cell}, "where", "label"}`` (`_raw_row`) that
    `TableTokenizer.fit` reads from the stream's head (the executor fits on it, then reads every later
    record with the fitted tokenizer); ``label`` and ``cls`` are then labels, never columns.
    """
    key = record.get("__key__")
    where = f"record {key}" if key else "record"
    columns = tokenizer.columns
    if columns is None:
        return _raw_row(record, where)
    row = record
    if not any(c in record for c in columns):
        name, value = record_field(record, ("json",), required=False)
        if name is not None:
            row = _json_row(value, name)
    if not any(c in row for c in columns):
        found = ", ".join(sorted(str(k) for k in row if not str(k).startswith("__"))) or "none"
        raise DataError(
            f"the record holds none of the model's columns {columns} (its fields: {found}); accepted: "
            "one field per column (column name → cell), or a 'json' field holding such an object"
        )
    cells = [_cell(row.get(c), c) for c in columns]
    for j, cell in enumerate(cells):
        tokenizer.encode_cell(j, cell, where)  # raises naming the column; collate then reuses the cached codes
    label_name, label = record_field(record, [n for n in LABEL_FIELDS if n not in columns], required=False)
    return {"cells": cells, "where": where, "label": -1 if label_name is None else as_int(label, label_name)}
