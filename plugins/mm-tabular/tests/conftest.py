import dataclasses

import pytest

from mm_tabular import Table, TableTokenizer
from mm_tabular.data import TableRows

COLUMNS = ["age", "city", "score"]
ROWS = [
    ["31", "Oslo", "1.5"],
    ["45", None, "2.0"],
    [None, "Lima", "3.25"],
    ["28", "Oslo", None],
    ["52", "Lima", "0.5"],
    ["39", "Kyiv", "2.75"],
    ["33", None, "1.0"],
    ["60", "Oslo", "4.0"],
]


def fitted_tokenizer(rows=ROWS, columns=COLUMNS, **options) -> TableTokenizer:
    tok = TableTokenizer(**options)
    tok.fit(TableRows(Table("train.csv", columns, rows), list(range(len(rows)))))
    return tok


@pytest.fixture
def rows() -> list[list]:
    return [list(r) for r in ROWS]


@pytest.fixture
def fit():
    """``fit(rows=ROWS, columns=COLUMNS, **options)``: a TableTokenizer fitted on those rows."""
    return fitted_tokenizer


@pytest.fixture(scope="session")
def tokenizer_options() -> dict:
    return dataclasses.asdict(fitted_tokenizer())


@pytest.fixture
def samples() -> list[dict]:
    return [{"cells": r, "where": f"train.csv, row {i + 1}"} for i, r in enumerate(ROWS)]
