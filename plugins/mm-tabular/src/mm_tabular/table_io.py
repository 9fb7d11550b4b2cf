"""Reading and writing user tables (CSV, parquet) without changing observed cells.

A `Table` keeps every cell as it was read: CSV cells as their exact text
(pandas with ``dtype=str`` and NA detection off), parquet cells as Python
values. Missing cells are ``None``; in CSV a cell is missing when its text is
one of `MISSING_TEXT` or spells NaN. Numbers out of float32's range (±inf,
1e308) are not missing: the tokenizer refuses them, naming file, row and column. Keeping the raw text is what lets ``mm impute`` write
observed cells back byte-for-byte.
"""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmcore.errors import DataError

MISSING_TEXT = frozenset({"", "NA", "N/A", "NaN", "nan", "NULL", "null", "None", "?"})
FORMATS = ".csv, .tsv, .parquet"


@dataclass
class Table:
    path: str
    columns: list[str]
    rows: list[list[Any]]  # cells: str (CSV text), int/float/str/bool (parquet) or None (missing)


def is_missing(cell: Any) -> bool:
    """None, a `MISSING_TEXT` cell, or NaN in any spelling ("NAN", "-nan", a parquet NaN): missing by design."""
    if cell is None:
        return True
    if isinstance(cell, str):
        text = cell.strip()
        return text in MISSING_TEXT or text.lower().lstrip("+-") == "nan"
    return isinstance(cell, float) and math.isnan(cell)


def read_table(path: str | Path) -> Table:
    """CSV/TSV (exact cell text) or parquet (Python values); missing cells become None."""
    import pandas as pd

    path = Path(path)
    suffix = path.suffix.lower()
    if not path.is_file():
        raise DataError(f"table {path} does not exist; accepted: a {FORMATS} file")
    try:
        if suffix in (".csv", ".tsv", ".txt"):
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False, sep="\t" if suffix == ".tsv" else ",")
        elif suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        else:
            raise DataError(f"table {path} has an unknown extension {suffix!r}; accepted: {FORMATS}")
    except DataError:
        raise
    except Exception as exc:  # pandas/pyarrow raise many types for a damaged file
        raise DataError(f"cannot read table {path}: {' '.join(str(exc).split())}; accepted: a {FORMATS} file") from None
    columns = [str(c) for c in frame.columns]
    if not columns:
        raise DataError(f"table {path} has no columns; accepted: a {FORMATS} file with a header row")
    dupes = sorted({c for c in columns if columns.count(c) > 1})
    if dupes:
        raise DataError(f"table {path} repeats column name(s) {dupes}; accepted: unique column names")
    rows = [[None if is_missing(c) else _plain(c) for c in row] for row in frame.itertuples(index=False, name=None)]
    return Table(str(path), columns, rows)


def _plain(cell: Any) -> Any:
    """numpy scalars → Python scalars (parquet)."""
    return cell.item() if hasattr(cell, "item") and not isinstance(cell, str) else cell


def write_table(table: Table, path: str | Path) -> None:
    """Write atomically (a temporary file beside ``path``, then rename): a failure leaves no half file."""
    import pandas as pd

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".tsv", ".txt", ".parquet", ".pq"):
        raise DataError(f"output {path} has an unknown extension {suffix!r}; accepted: {FORMATS}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    os.close(fd)
    try:
        frame = pd.DataFrame(table.rows, columns=table.columns)
        if suffix in (".parquet", ".pq"):
            frame.to_parquet(tmp, index=False)
        else:  # text cells go out exactly as they came in; None only remains where nothing could be filled
            frame.to_csv(tmp, index=False, sep="\t" if suffix == ".tsv" else ",", na_rep="", lineterminator="\n")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
