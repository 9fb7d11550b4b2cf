"""`from_record`: streamed rows (webdataset and Hugging Face datasets forms) give the table datasets' samples."""

import json

import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf

import mm_tabular
from mm_tabular import TableFile, TableTokenizer
from mm_tabular.data import demo_table, from_record
from mmcore.config import load_recipe
from mmcore.errors import ConfigError, DataError
from mmcore.executor import build_single, train
from mmcore.plugins import Registry, get_registry
from mmcore.streams import SampleList

CSV = "age,city,score\n31,Oslo,1.5\n45,,2.0\nNA,Lima,3.25\n28,Oslo,\n52,Lima,0.5\n39,Kyiv,2.75\n"
HF_ROWS = [  # the same rows as datasets yields them: typed values, None for nulls
    {"age": 31, "city": "Oslo", "score": 1.5},
    {"age": 45, "city": None, "score": 2.0},
    {"age": None, "city": "Lima", "score": 3.25},
    {"age": 28, "city": "Oslo", "score": float("nan")},
    {"age": 52, "city": "Lima", "score": 0.5},
    {"age": 39, "city": "Kyiv", "score": 2.75},
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
    text = [
        {"__key__": f"{i:06d}", **{c: (b"" if v is None else v.encode()) for c, v in zip(rows.columns, s["cells"])}}
        for i, s in enumerate(expected)
    ]
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
    with pytest.raises(
        DataError,
        match=r"^the record holds none of the model's columns \['age', 'city', 'score'\] "
        r"\(its fields: jpg\)",
    ):
        from_record(tok, {"__key__": "1", "jpg": b"\xff"}, None)
    with pytest.raises(DataError, match=r"^field 'json' is not JSON"):
        from_record(tok, {"json": b"{age: 3"}, None)
    with pytest.raises(DataError, match=r"^field 'json' holds a JSON list"):
        from_record(tok, {"json": b"[31, 2]"}, None)


def test_a_given_tokenizer_streams_and_is_not_refitted_on_samples(table):
    fitted, rows = table
    given = TableTokenizer(**{k: getattr(fitted, k) for k in ("columns", "kinds", "mean", "std", "categories")})
    samples = [from_record(given, r, None) for r in HF_ROWS]  # what the executor fits on: a stream's head
    given.fit(samples)
    assert (given.columns, given.mean, given.categories) == (fitted.columns, fitted.mean, fitted.categories)
    assert torch.equal(given.collate(samples)["values"], fitted.collate([rows[i] for i in range(len(rows))])["values"])
    with pytest.raises(DataError, match=r"can be fitted only on a table .* or on a stream's rows read with it unfitted"):
        TableTokenizer().fit(samples)


def test_an_unfitted_tokenizer_reads_raw_rows_and_fits_on_them(table):
    fitted, rows = table
    tok = TableTokenizer()
    raw = [from_record(tok, {"__key__": f"{i}", **r, "label": 1}, None) for i, r in enumerate(HF_ROWS)]
    assert raw[1] == {"row": {"age": 45, "city": None, "score": 2.0}, "where": "record 1", "label": 1}
    as_json = from_record(tok, {"__key__": "j", "json": json.dumps({"age": 3, "city": "Oslo"}).encode(), "cls": b"2"}, None)
    assert as_json == {"row": {"age": 3, "city": "Oslo"}, "where": "record j", "label": 2}
    with pytest.raises(DataError, match=r"^field 'city' is a list; accepted: one cell"):
        from_record(tok, {"age": 3, "city": ["Oslo"]}, None)
    with pytest.raises(DataError, match=r"^the record holds no column \(its fields: label\)"):
        from_record(tok, {"__key__": "1", "label": 3}, None)
    with pytest.raises(ConfigError, match="not fitted"):
        tok.collate(raw)  # before the fit, collate refuses; after it, raw rows are for the fit only
    tok.fit(SampleList(raw))
    assert (tok.columns, tok.kinds, tok.categories) == (fitted.columns, fitted.kinds, fitted.categories)
    assert tok.mean == pytest.approx(fitted.mean) and tok.std == pytest.approx(fitted.std)
    with pytest.raises(DataError, match=r"^record 0: a streamed row read before the tokenizer was fitted reached collate"):
        tok.collate(raw)
    # rows with different fields: the union in first-seen order; a field a row lacks is a missing cell
    mixed = TableTokenizer()
    mixed.fit([from_record(mixed, r, None) for r in ({"b": "x", "a": 1}, {"a": 2, "c": 1.5}, {"c": 2.5, "b": "y"})])
    assert (mixed.columns, mixed.kinds) == (["b", "a", "c"], ["categorical", "numeric", "numeric"])
    assert mixed.mean == pytest.approx([0.0, 1.5, 2.0])
    empty = TableTokenizer()
    with pytest.raises(DataError, match=r"^column 'b' has no observed value in the first 2 streamed records"):
        empty.fit([from_record(empty, r, None) for r in ({"a": 1, "b": None}, {"a": 2, "b": "NA"})])
    with pytest.raises(DataError, match=r"the stream yielded no record"):
        TableTokenizer().fit([])
    with pytest.raises(ConfigError, match=r"column\(s\) \['d'\] named in categorical/numeric are not in the first 1 "):
        TableTokenizer(numeric=["d"]).fit([from_record(empty, {"a": 1}, None)])


TINY = [
    "model.encoder.dim=16",
    "model.encoder.depth=1",
    "model.encoder.heads=2",
    "model.decoder.dim=16",
    "model.decoder.depth=1",
    "model.decoder.heads=2",
    "data.batch_size=16",
    "data.eval_batches=1",
    "train.steps=3",
    "train.warmup_steps=1",
    "train.log_every=1",
    "train.checkpoint_every=3",
    "train.trackers=[]",
]


@pytest.fixture
def wine_shards(tmp_path):
    """sklearn's wine table as three parquet shards (and one held-out shard), and as one CSV file."""
    frame = pd.DataFrame(demo_table("wine").rows, columns=demo_table("wine").columns)
    shards = tmp_path / "shards"
    shards.mkdir()
    for i, part in enumerate((frame.iloc[:60], frame.iloc[60:120], frame.iloc[120:160])):
        part.to_parquet(shards / f"train-{i}.parquet", index=False)
    frame.iloc[160:].to_parquet(tmp_path / "test.parquet", index=False)
    frame.iloc[:160].to_csv(tmp_path / "wine.csv", index=False)
    return tmp_path


def test_a_streamed_table_fits_itself_from_the_streams_head(wine_shards):
    config = OmegaConf.to_container(load_recipe("tabular-remask", TINY).model)
    dataset = {
        "name": "hf",
        "path": "parquet",
        "buffer_size": 8,
        "test_split": "test",
        "data_files": {"train": str(wine_shards / "shards" / "*.parquet"), "test": str(wine_shards / "test.parquet")},
    }
    model, train_set, test_set, collate = build_single(config, dataset)
    tok = TableTokenizer()
    tok.fit(TableFile(path=str(wine_shards / "wine.csv")).build(tok, "train"))
    assert config["tokenizer"]["columns"] == tok.columns and config["tokenizer"]["kinds"] == tok.kinds
    assert config["tokenizer"]["categories"] == tok.categories == [[]] * 13 + [["class_1", "class_0", "class_2"]]
    assert config["tokenizer"]["mean"] == pytest.approx(tok.mean) and config["tokenizer"]["std"] == pytest.approx(tok.std)
    assert len(test_set) == 18 and all("cells" in test_set[i] for i in range(len(test_set)))  # read fitted
    stream = iter(train_set.place(0, 0, 1))
    for _ in range(3):
        samples = [next(stream) for _ in range(16)]
        assert all("cells" in s and "row" not in s for s in samples)
        batch = collate(samples)
        assert batch["values"].shape == (16, 14) and "valid" not in batch  # wine is complete
        tokens = model.tokenizer.tokenize(batch)
        assert tokens.values.shape == (16, 14, 1)
        total, count = model(batch, generator=torch.Generator().manual_seed(0)).loss_terms({})
        assert count > 0 and torch.isfinite(total)


def test_a_streamed_table_trains_and_writes_a_model_folder(wine_shards, tmp_path):
    recipe = OmegaConf.load(get_registry().recipe("tabular-remask"))
    recipe.data.dataset = {"name": "hf", "path": "parquet", "data_files": str(wine_shards / "shards" / "*.parquet"), "buffer_size": 32}
    OmegaConf.save(recipe, tmp_path / "stream.yaml")
    folder = train(load_recipe(tmp_path / "stream.yaml", TINY + [f"output_dir={tmp_path / 'run'}"]))
    saved = json.loads((folder / "config.json").read_text())
    assert (folder / "model.safetensors").exists() and len(saved["tokenizer"]["columns"]) == 14
    assert saved["tokenizer"]["columns"][-1] == "target" and saved["tokenizer"]["kinds"][-1] == "categorical"
