import math

import pytest
import torch

from mmcore.errors import ConfigError, DataError
from mm_tabular.tokenizer import CATEGORICAL, NUMERIC

COLUMNS = ["age", "city", "score"]


def test_fit_types_columns_and_normalises_on_observed_training_cells(fit, rows):
    tok = fit()
    assert tok.kinds == [NUMERIC, CATEGORICAL, NUMERIC]
    ages = [31, 45, 28, 52, 39, 33, 60]
    mean = sum(ages) / len(ages)
    assert tok.mean[0] == pytest.approx(mean)
    assert tok.std[0] == pytest.approx(math.sqrt(sum((a - mean) ** 2 for a in ages) / len(ages)))
    assert tok.categories[1] == ["Oslo", "Lima", "Kyiv"]  # most frequent first: index 0 is the mode


def test_explicit_override_makes_a_numeric_column_categorical(fit, rows):
    tok = fit(categorical=["age"])
    assert tok.kinds[0] == CATEGORICAL and "31" in tok.categories[0]


def test_collate_marks_missing_cells_void_and_encodes_values(fit, rows, samples):
    tok = fit()
    batch = tok.collate(samples)
    assert batch["values"].shape == (len(rows), len(COLUMNS))
    assert batch["valid"].tolist()[1] == [True, False, True]
    assert batch["values"][0, 0].item() == pytest.approx((31 - tok.mean[0]) / tok.std[0])
    assert batch["values"][2, 1].item() == tok.categories[1].index("Lima")
    complete = tok.collate([samples[0], samples[4]])
    assert "valid" not in complete  # no void cell: no attention mask at all


def test_non_numeric_text_in_numeric_column_names_file_column_and_row(fit, rows):
    tok = fit()
    with pytest.raises(DataError, match=r"data\.csv, row 7, column 'score': 'abc' is not a finite number"):
        tok.collate([{"cells": ["30", "Oslo", "abc"], "where": "data.csv, row 7"}])


def test_declared_numeric_column_with_text_fails_at_fit(fit, rows):
    rows = [r[:] for r in rows]
    rows[3][0] = "old"
    with pytest.raises(DataError, match=r"column 'age', row 4: 'old'"):
        fit(rows, numeric=["age"])


def test_column_entirely_missing_in_training_is_an_error(fit, rows):
    rows = [[r[0], r[1], None] for r in rows]
    with pytest.raises(DataError, match="column 'score' has no observed value"):
        fit(rows)


def test_unseen_category_is_void_not_an_error(fit, rows):
    tok = fit()
    batch = tok.collate([{"cells": ["30", "Paris", "1.0"]}])
    assert batch["valid"].tolist() == [[True, False, True]] and tok.unseen(1, "Paris") and not tok.unseen(1, "Oslo")


def test_given_fields_must_be_complete(fit, rows):
    with pytest.raises(ConfigError, match="one entry per column"):
        type(fit())(columns=["a", "b"], kinds=[NUMERIC], mean=[0.0], std=[1.0], categories=[[]])


def test_tokenize_detokenize_round_trip(fit, rows, samples):
    tok = fit()
    batch = tok.collate(samples)
    tokens = tok.tokenize(batch)
    assert tokens.values.shape == (len(rows), 3, 1) and tokens.positions[0, :, 0].tolist() == [0.0, 1.0, 2.0]
    assert torch.equal(tok.detokenize(tokens.values, tokens), batch["values"])


@pytest.mark.parametrize(
    "cell",
    ["1e308", "inf", "-Infinity", 1e300, float("-inf"), 10**400],
    ids=["1e308", "inf", "-Infinity", "float 1e300", "float -inf", "int 10**400"],
)
def test_numbers_beyond_float32_are_refused_at_fit_naming_file_row_and_column(fit, rows, cell):
    rows = [r[:] for r in rows]
    rows[5][2] = cell
    with pytest.raises(DataError, match=r"train.csv, row 6, column 'score': .* is not a finite number within ±3.4e\+38"):
        fit(rows)


def test_nan_in_any_spelling_is_missing_and_fit_statistics_stay_finite(fit, rows):
    from mm_tabular.table_io import is_missing

    assert all(is_missing(c) for c in ["NaN", "NAN", "-nan", " nan ", float("nan"), "", "NA"])
    rows = [r[:] for r in rows]
    rows[0][2] = None
    tok = fit(rows)
    assert all(math.isfinite(v) for v in tok.mean + tok.std) and tok.kinds[2] == NUMERIC


def test_fit_names_the_row_of_the_file_not_of_the_split():
    from mm_tabular import Table, TableTokenizer
    from mm_tabular.data import TableRows

    table = Table("data.csv", ["x"], [["1"], ["2"], ["inf"], ["4"]])
    with pytest.raises(DataError, match=r"data.csv, row 3, column 'x'"):
        TableTokenizer().fit(TableRows(table, [1, 2, 3]))


def test_collate_refuses_values_beyond_float32_naming_the_cell(fit, rows):
    tok = fit()
    for cell in ["1e308", "-inf", 1e39]:
        with pytest.raises(DataError, match=r"data.csv, row 2, column 'age': .* not a finite number within"):
            tok.collate([{"cells": [cell, "Oslo", "1.0"], "where": "data.csv, row 2"}])
