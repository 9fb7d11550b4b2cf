"""Fuzzing the table reader with truncated and corrupted real CSV, TSV and parquet files.

Property: reading, fitting the tokenizer and encoding every row gives a table of whole rows with
finite statistics and finite values, or a DataError naming the file; any other exception fails.
MM_FUZZ_EXAMPLES sets the cases per format (60 by default; a benchmark run uses 1000).
"""

import math

import pytest
import torch
from hypothesis import given
from mm_tabular import TableFile, TableTokenizer
from mm_tabular.data import demo_table
from mm_tabular.table_io import Table, write_table
from mmcore.errors import DataError
from mmcore.testing import corrupted, fuzz_settings


def real_table(path) -> bytes:
    """The first 40 rows of sklearn's iris (4 numbers and a class name), a few cells blanked, in ``path``'s format."""
    iris = demo_table("iris")
    rows = [list(r) for r in iris.rows[:40]]
    rows[3][1] = rows[7][4] = None
    write_table(Table("iris", iris.columns, rows), path)
    return path.read_bytes()


@pytest.mark.parametrize("name", ["iris.csv", "iris.tsv", "iris.parquet"])
def test_corrupted_tables_are_read_or_refused_by_name(tmp_path_factory, name):
    path = tmp_path_factory.mktemp("fuzz") / name
    original = real_table(path)

    @fuzz_settings()
    @given(corrupted(original))
    def run(data):
        path.write_bytes(data)
        try:
            rows = TableFile(path=str(path), test_fraction=0).build(None, "train")
            tok = TableTokenizer()
            tok.fit(rows)
            batch = tok.collate([rows[i] for i in range(len(rows))])
        except DataError as exc:
            assert str(path) in str(exc), exc
            return
        assert rows.rows and all(len(r) == len(rows.columns) for r in rows.rows)
        assert all(math.isfinite(v) for v in tok.mean + tok.std) and all(s > 0 for s in tok.std)
        assert batch["values"].shape == (len(rows), len(rows.columns)) and torch.isfinite(batch["values"]).all()

    run()
