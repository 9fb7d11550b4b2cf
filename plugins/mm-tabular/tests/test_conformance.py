"""The tabular modality against mmcore's conformance suite, in both backbone styles."""

import dataclasses

import pytest

from mmcore.testing import modality_checks
from mm_tabular import Table, TableTokenizer
from mm_tabular.data import TableRows

ROWS = [["31", "Oslo", "1.5"], ["45", None, "2.0"], [None, "Lima", "3.25"], ["28", "Oslo", None], ["52", "Kyiv", "0.5"]]
SAMPLES = [{"cells": r} for r in ROWS[:4]]  # three rows with a missing cell: void tokens exercised
_tok = TableTokenizer()
_tok.fit(TableRows(Table("train.csv", ["age", "city", "score"], ROWS), list(range(len(ROWS)))))
TOKENIZER = dataclasses.asdict(_tok)


@pytest.mark.parametrize(
    "check", modality_checks("tabular", SAMPLES, TOKENIZER, styles=("mae", "bert"), round_trip="values"), ids=lambda c: c.name
)
def test_conformance(check):
    check()
