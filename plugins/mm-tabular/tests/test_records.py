"""`from_record`: streamed rows (webdataset and Hugging Face datasets forms) give the table datasets' samples."""

import json

import pytest
import torch

import mm_tabular
from mm_tabular import TableFile, TableTokenizer
from mm_tabular.data import from_record
from mmcore.errors import DataError
from mmcore.plugins import Registry

CSV = "age,city,score\n31,Oslo,1.5\n45,,2.0\nNA,Lima,3.25\n28,Oslo,\n52,Lima,0.5\n39,Kyiv,2.75\n"
HF_ROWS = [  # the same rows as datasets yields them: typed values, None for nulls
    {"age": 31, "city": "Oslo", "score": 1.5}, {"age": 45, "city": None, "score": 2.0},
    {"age": None, "city": "Lima", "score": 3.25}, {"age": 28, "city": "Oslo", "score": float("nan")},
    {"age": 52, "city": "Lima", "score": 0.5}, {"age": 39, "city": "Kyiv", "score": 2.75},
]


@pytest.fixture
def table(tmp_path):
    path = tmp_path / "people.csv"
    path.write_text(CSV)
    rows = TableFile(path=str(path)).build(None, "train")
    tok = TableTokenizer()
    tok.fit(rows)
    return tok, rows


def test_registered():
    registry = Registry()
    assert registry.add_plugin(mm_tabular, "tabular").error is None
    assert registry.modality("tabular").from_record is from_record and registry.streams("tabular")


def test_both_record_forms_equal_the_file_samples(table):
    tok, rows = table
    expected = [rows[i] for i in range(len(rows))]
    text = [{"__key__": f"{i:06d}", **{c: (b"" if v is None else v.encode()) for c, v in zip(rows.columns, s["cells"])}}
            for i, s in enumerate(expected)]
    webdataset = [from_record(tok, r, torch.Generator()) for r in text]
    assert [s["cells"] for s in webdataset] == [s["cells"] for s in expected]  # the exact cell text, as the CSV
    assert webdataset[1] == {"cells": ["45", None, "2.0"], "where": "record 000001", "label": -1}
    as_json = [from_record(tok, {"__key__": "x", "json": json.dumps(r).encode()}, None) for r in HF_ROWS[:3]]
    hf = [from_record(tok, dict(r, extra="ignored"), None) for r in HF_ROWS]
    assert hf[3]["cells"] == [28, "Oslo", None] and hf[2]["cells"] == [None, "Lima", 3.25]
    reference = tok.collate(expected)
    for samples in (webdataset, hf):
        batch = tok.collate(samples)
        assert torch.equal(batch["values"], reference["values"]) and torch.equal(batch["valid"], reference["valid"])
    assert torch.equal(tok.collate(as_json)["values"], reference["values"][:3])
    tokens = tok.tokenize(tok.collate(hf))
    assert tokens.values.shape == (6, 3, 1) and tokens.valid.tolist()[1] == [True, False, True]


def test_missing_columns_are_missing_cells_and_labels(table):
    tok, _ = table
    sample = from_record(tok, {"age": "40", "cls": b"2"}, None)
    assert sample["cells"] == ["40", None, None] and sample["label"] == 2
    assert tok.collate([sample])["valid"].tolist() == [[True, False, False]]
    assert from_record(tok, {"city": "Paris"}, None)["cells"] == [None, "Paris", None]  # unseen: void, as in files


def test_bad_records_name_the_field(table):
    tok, _ = table
    with pytest.raises(DataError, match=r"^record 7, column 'score': 'abc' is not a finite number"):
        from_record(tok, {"__key__": "7", "age": b"30", "city": b"Oslo", "score": b"abc"}, None)
    with pytest.raises(DataError, match=r"^record, column 'age': inf is not a finite number within"):
        from_record(tok, {"age": float("inf")}, None)
    with pytest.raises(DataError, match=r"^field 'city' is a list; accepted: one cell"):
        from_record(tok, {"age": 3, "city": ["Oslo", "Lima"]}, None)
    with pytest.raises(DataError, match=r"^field 'score' is not UTF-8 text"):
        from_record(tok, {"score": b"\xff1.5"}, None)
    with pytest.raises(DataError, match=r"^the record holds none of the model's columns \['age', 'city', 'score'\] "
                                        r"\(its fields: jpg\)"):
        from_record(tok, {"__key__": "1", "jpg": b"\xff"}, None)
    with pytest.raises(DataError, match=r"^field 'json' is not JSON"):
        from_record(tok, {"json": b"{age: 3"}, None)
    with pytest.raises(DataError, match=r"^field 'json' holds a JSON list"):
        from_record(tok, {"json": b"[31, 2]"}, None)
    with pytest.raises(DataError, match=r"^the table tokenizer is not fitted"):
        from_record(TableTokenizer(), {"age": 31}, None)


def test_a_given_tokenizer_streams_and_is_not_refitted_on_samples(table):
    fitted, rows = table
    given = TableTokenizer(**{k: getattr(fitted, k) for k in ("columns", "kinds", "mean", "std", "categories")})
    samples = [from_record(given, r, None) for r in HF_ROWS]  # what the executor fits on: a stream's head
    given.fit(samples)
    assert (given.columns, given.mean, given.categories) == (fitted.columns, fitted.mean, fitted.categories)
    assert torch.equal(given.collate(samples)["values"], fitted.collate([rows[i] for i in range(len(rows))])["values"])
    with pytest.raises(DataError, match=r"can be fitted only on a table"):
        TableTokenizer().fit(samples)
