"""Table rows ↔ one token per cell, with column typing and normalisation fitted on the training split.

Numeric cells become ``(x - mean) / std`` of their column; categorical cells
become the index of their value in the column's vocabulary. Missing cells are
*void* (``valid=False``): the encoder never sees them and they are never
scored. Everything fitted (column names, kinds, means, stds, vocabularies) is
a dataclass field, so ``config.json`` restores it with the model.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from mmcore.contract import Tokens
from mmcore.errors import ConfigError, DataError

NUMERIC, CATEGORICAL = "numeric", "categorical"


LIMIT = float(torch.finfo(torch.float32).max)  # |numeric cell| bound: float32's range (1e308 would overflow the statistics)


def read_number(cell: Any) -> float | None:
    """The cell as a float (possibly ±inf or nan), or None when it is not a number at all."""
    if isinstance(cell, bool):
        return float(cell)
    try:
        return float(cell) if isinstance(cell, (int, float)) else float(str(cell).strip())
    except OverflowError:  # an integer beyond float64
        return math.inf if cell > 0 else -math.inf
    except ValueError:
        return None


def parse_number(cell: Any) -> float | None:
    """A finite float, or None when the cell is not a number."""
    value = read_number(cell)
    return value if value is not None and math.isfinite(value) else None


def out_of_range(where: str, cell: Any) -> DataError:
    return DataError(
        f"{where}: {cell!r} is not a finite number within ±{LIMIT:.3g} (float32's range); accepted: such "
        "numbers, or an empty cell for a missing value"
    )


def category_key(cell: Any) -> str:
    """The vocabulary key of a categorical cell: its text (CSV) or its str() (parquet)."""
    return cell.strip() if isinstance(cell, str) else str(cell)


class StreamHead:
    """A stream's head as `fit` reads a table: raw-row samples ``{"row": {column: cell}, "where", "label"}``
    (what `from_record` makes with an unfitted tokenizer) → ``columns`` (the union of the rows' fields,
    first-seen order) and ``rows`` (one cell per column, None where a row lacks the field)."""

    def __init__(self, samples) -> None:
        samples = [samples[i] for i in range(len(samples))]
        if not all(isinstance(s, dict) and isinstance(s.get("row"), dict) for s in samples):
            raise DataError(
                "the table tokenizer can be fitted only on a table (data.dataset name=file or demo) or on a "
                "stream's rows read with it unfitted, not on other samples; accepted: a table file, a stream, "
                "or model.tokenizer.columns, kinds, mean, std and categories given (e.g. those of a model "
                "trained on a file, from its config.json)"
            )
        if not samples:
            raise DataError(
                "the stream yielded no record to fit the table tokenizer on; accepted: a stream with at "
                "least one row, or model.tokenizer.columns, kinds, mean, std and categories given"
            )
        self.source = f"the first {len(samples)} streamed records"
        self.columns = list(dict.fromkeys(c for s in samples for c in s["row"]))
        self.rows = [[s["row"].get(c) for c in self.columns] for s in samples]
        self.numbers = list(range(1, len(samples) + 1))


@dataclass
class TableTokenizer:
    """Fields up to ``numeric`` are options; the rest are set by `fit` (or given, to skip it)."""

    categorical: list[str] = field(default_factory=list)  # force these columns categorical
    numeric: list[str] = field(default_factory=list)  # force these numeric (a non-number is then an error)
    columns: list[str] | None = None
    kinds: list[str] | None = None
    mean: list[float] | None = None
    std: list[float] | None = None
    categories: list[list[str]] | None = None

    def __post_init__(self) -> None:
        both = sorted(set(self.categorical) & set(self.numeric))
        if both:
            raise ConfigError(f"model.tokenizer: column(s) {both} are listed as both categorical and numeric")
        if self.columns is not None:
            n = len(self.columns)
            for name in ("kinds", "mean", "std", "categories"):
                value = getattr(self, name)
                if value is None or len(value) != n:
                    raise ConfigError(f"model.tokenizer.{name} must list one entry per column ({n}) when columns are given")
            bad = [k for k in self.kinds if k not in (NUMERIC, CATEGORICAL)]
            if bad:
                raise ConfigError(f"model.tokenizer.kinds {bad} are unknown; accepted: {NUMERIC}, {CATEGORICAL}")
            self.columns, self.kinds = [str(c) for c in self.columns], [str(k) for k in self.kinds]
            self.mean, self.std = [float(v) for v in self.mean], [float(v) for v in self.std]
            self.categories = [[str(v) for v in vocab] for vocab in self.categories]
        self._codes: list[dict[Any, tuple[float, bool]]] | None = None
        self._layout: tuple[Tensor, Tensor, Tensor] | None = None
        self._index: list[dict[str, int]] | None = None

    # -- fitted facts -----------------------------------------------------------
    def _require_fit(self) -> None:
        if self.columns is None:
            raise ConfigError("the table tokenizer is not fitted: train a model (mm train) or give model.tokenizer.columns")

    @property
    def num_columns(self) -> int:
        self._require_fit()
        return len(self.columns)

    @property
    def vocab_sizes(self) -> list[int]:
        self._require_fit()
        return [len(v) for v in self.categories]

    def layout(self) -> tuple[Tensor, Tensor, Tensor]:
        """(offset [C], is_numeric [C], owner [total]): every column's categories share one table,
        column j's starting at offset[j]; owner[t] is the column of category t (-1 for the
        placeholder of an all-numeric table)."""
        sizes = self.vocab_sizes
        offsets = torch.tensor([sum(sizes[:j]) for j in range(len(sizes))], dtype=torch.long)
        numeric = torch.tensor([k == NUMERIC for k in self.kinds], dtype=torch.bool)
        owner = torch.tensor([j for j, n in enumerate(sizes) for _ in range(n)] or [-1], dtype=torch.long)
        return offsets, numeric, owner

    def fit(self, train_dataset) -> None:
        """Type each column and fit its statistics on the training rows only.

        ``train_dataset`` is a table (``columns``/``rows``) or a stream's head: the samples `from_record`
        made with this tokenizer unfitted (``{"row": {column: cell}, ...}``), read as a table whose columns
        are the rows' fields in first-seen order (a field a row lacks is a missing cell). A tokenizer
        fitted already (``model.tokenizer.columns``, ... given) is kept as it is on a stream's head.
        """
        if not (hasattr(train_dataset, "columns") and hasattr(train_dataset, "rows")):
            if self.columns is not None:
                return
            train_dataset = StreamHead(train_dataset)
        columns, rows = list(train_dataset.columns), train_dataset.rows
        source = getattr(train_dataset, "source", "training table")
        streamed = isinstance(train_dataset, StreamHead)
        unknown = sorted((set(self.categorical) | set(self.numeric)) - set(columns))
        if unknown:
            raise ConfigError(f"model.tokenizer: column(s) {unknown} named in categorical/numeric are not in {source}; columns: {columns}")
        numbers_of = getattr(train_dataset, "numbers", None) or range(1, len(rows) + 1)  # rows as the file counts them
        kinds, means, stds, vocabs = [], [], [], []
        for j, name in enumerate(columns):
            observed = [(numbers_of[i], row[j]) for i, row in enumerate(rows) if row[j] is not None]
            if not observed:
                scope = (
                    f"column {name!r} has no observed value in {source}"
                    if streamed
                    else f"{source}: column {name!r} has no observed value in the training split"
                )
                raise DataError(f"{scope}; drop the column or provide some values")
            numbers = [read_number(cell) for _, cell in observed]
            if name in self.numeric:
                for (i, cell), x in zip(observed, numbers):
                    if x is None:
                        raise DataError(
                            f"{source}: column {name!r}, row {i}: {cell!r} is not a finite number, "
                            "but the column is declared numeric (model.tokenizer.numeric)"
                        )
            if name not in self.categorical and all(x is not None for x in numbers):
                for (i, cell), x in zip(observed, numbers):  # a number column: NaN is missing, ±inf or 1e308 is refused
                    if not abs(x) <= LIMIT:
                        raise out_of_range(f"{source}, row {i}, column {name!r}", cell)
                mean = sum(numbers) / len(numbers)
                std = math.sqrt(sum((x - mean) ** 2 for x in numbers) / len(numbers))
                kinds.append(NUMERIC), means.append(mean), stds.append(std if std > 1e-12 else 1.0), vocabs.append([])
            else:
                kinds.append(CATEGORICAL), means.append(0.0), stds.append(1.0)
                counts = Counter(category_key(cell) for _, cell in observed)
                vocabs.append(sorted(counts, key=lambda k: (-counts[k], k)))  # most frequent first: index 0 is the mode
        self.columns, self.kinds, self.mean, self.std, self.categories = columns, kinds, means, stds, vocabs
        self._codes = self._layout = self._index = None

    # -- encoding (data-loader side) ------------------------------------------------
    def _code_tables(self) -> list[dict[Any, tuple[float, bool]]]:
        if self._codes is None:  # per-column caches of cell → (value, valid): collate parses each distinct cell once
            self._codes = [dict() for _ in self.columns]
        return self._codes

    def encode_cell(self, j: int, cell: Any, where: str) -> tuple[float, bool]:
        """(value, valid) of one cell of column ``j``; ``where`` names file and row for errors.

        A categorical value unseen in training is void (valid False): the model
        treats it like a missing cell, and ``mm impute`` keeps it as it was.
        """
        if cell is None:
            return 0.0, False
        cache = self._code_tables()[j]
        key = (type(cell), cell)
        hit = cache.get(key)
        if hit is not None:
            return hit
        if self.kinds[j] == NUMERIC:
            x = read_number(cell)
            if x is None:
                raise DataError(
                    f"{where}, column {self.columns[j]!r}: {cell!r} is not a finite number, but the column "
                    "is numeric; fix the cell, leave it empty (missing), or retrain with the column in "
                    "model.tokenizer.categorical"
                )
            value = (x - self.mean[j]) / self.std[j] if abs(x) <= LIMIT else math.inf
            if not abs(value) <= LIMIT:  # ±inf, nan, 1e308, or so far from the training mean that float32 overflows
                raise out_of_range(f"{where}, column {self.columns[j]!r}", cell)
            hit = (value, True)
        else:
            index = self._vocab_index(j).get(category_key(cell))
            hit = (float(index), True) if index is not None else (0.0, False)
        if len(cache) < 100_000:
            cache[key] = hit
        return hit

    def unseen(self, j: int, cell: Any) -> bool:
        """True for an observed categorical cell whose value the model never saw."""
        return cell is not None and self.kinds[j] == CATEGORICAL and category_key(cell) not in self._vocab_index(j)

    def _vocab_index(self, j: int) -> dict[str, int]:
        if self._index is None:
            self._index = [{k: i for i, k in enumerate(vocab)} for vocab in self.categories]
        return self._index[j]

    def collate(self, samples: list[dict[str, Any]]) -> dict[str, Tensor]:
        """Items {"cells": [one per column], "where": "file, row r", "label": int} → values/valid [B, C]."""
        self._require_fit()
        C = len(self.columns)
        values = torch.zeros(len(samples), C, dtype=torch.float32)
        valid = torch.zeros(len(samples), C, dtype=torch.bool)
        for b, sample in enumerate(samples):
            if "cells" not in sample:
                raise DataError(
                    f"{sample.get('where', f'sample {b}')}: a streamed row read before the tokenizer was "
                    "fitted reached collate; such samples are for `fit` only"
                )
            cells = sample["cells"]
            where = sample.get("where", f"sample {b}")
            if len(cells) != C:
                raise DataError(f"{where}: {len(cells)} cells, but the model has {C} columns {self.columns}")
            for j, cell in enumerate(cells):
                values[b, j], valid[b, j] = self.encode_cell(j, cell, where)
        labels = torch.tensor([int(s.get("label", -1)) for s in samples], dtype=torch.long)
        batch = {"values": values, "labels": labels}
        if not bool(valid.all()):  # decided on the CPU: a batch with no void cell passes no attention mask
            batch["valid"] = valid
        return batch

    # -- device side ------------------------------------------------------------
    def tokenize(self, batch: dict[str, Tensor]) -> Tokens:
        values = batch["values"]  # [B, C]
        B, C = values.shape
        if C != self.num_columns:
            raise ValueError(f"batch has {C} columns, the tokenizer {self.num_columns}")
        positions = torch.arange(C, device=values.device, dtype=torch.float32).view(1, C, 1)  # column ids
        if self._layout is None:
            self._layout = self.layout()
        return Tokens(values=values[..., None], positions=positions, valid=batch.get("valid"), meta={"columns": C, "layout": self._layout})

    def detokenize(self, values: Tensor, tokens: Tokens) -> Tensor:
        """[B, C, 1] token values → [B, C] (normalised numbers, category indices)."""
        return values[..., 0]

    def decode(self, j: int, value: float) -> Any:
        """A token value of column ``j`` back to a cell: a number in data units or a category."""
        if self.kinds[j] == NUMERIC:
            return value * self.std[j] + self.mean[j]
        vocab = self.categories[j]
        return vocab[min(max(int(round(value)), 0), len(vocab) - 1)]
