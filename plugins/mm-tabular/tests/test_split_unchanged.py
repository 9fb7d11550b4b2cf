"""DemoTable's and TableFile's train/test splits are the ones drawn inline before mmcore.splits
(``random.Random(0).shuffle`` of the row numbers)."""

import random

import pytest

from mm_tabular.data import DemoTable, TableFile


def old_split(n, fraction, split):  # mm_tabular/data.py split_rows, before mmcore.splits
    order = list(range(n))
    random.Random(0).shuffle(order)
    num_test = int(round(fraction * n))
    return sorted(order[:num_test] if split == "test" else order[num_test:])


@pytest.mark.parametrize("table", ["wine", "iris"])
def test_demo_table_split_is_unchanged(table):
    for split in ("train", "test"):
        rows = DemoTable(table=table, test_fraction=0.2).build(None, split)
        assert rows.numbers == [i + 1 for i in old_split({"wine": 178, "iris": 150}[table], 0.2, split)]


def test_table_file_split_is_unchanged(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a,b\n" + "".join(f"{i},{i % 3}\n" for i in range(61)))
    for split in ("train", "test"):
        rows = TableFile(path=str(path), test_fraction=0.3).build(None, split)
        assert rows.numbers == [i + 1 for i in old_split(61, 0.3, split)]
