"""`from_record`: streamed records (webdataset and Hugging Face datasets forms) give the map datasets' samples."""

import json

import pytest
import torch

import mm_text
from mm_text import TextFiles
from mm_text.data import from_record
from mmcore.errors import DataError
from mmcore.plugins import Registry


def test_registered():
    registry = Registry()
    assert registry.add_plugin(mm_text, "text").error is None
    assert registry.modality("text").from_record is from_record and registry.streams("text")


def test_both_record_forms_equal_the_file_samples(tmp_path, tok, sentences):
    raw = ["  The cat sat\ton the mat.  ", "A dog ran across the garden\nand barked at the postman."]
    corpus = tmp_path / "c.jsonl"
    corpus.write_text("\n".join(json.dumps({"text": t}) for t in raw) + "\n", encoding="utf-8")
    expected = TextFiles(path=str(corpus), test_fraction=0).build(tok, "train")
    paragraphs = tmp_path / "p.txt"
    paragraphs.write_text("\n\n".join(raw) + "\n", encoding="utf-8")
    assert [s["text"] for s in TextFiles(path=str(paragraphs), test_fraction=0).build(tok, "train")] == [
        expected[i]["text"] for i in range(2)
    ]
    for i, text in enumerate(raw):
        webdataset = from_record(tok, {"__key__": f"00000{i}", "txt": ("\ufeff" + text).encode("utf-8")}, torch.Generator())
        hf = from_record(tok, {"text": text, "id": i}, None)
        assert webdataset == hf == expected[i] == {"text": expected[i]["text"], "label": -1}
    samples = [from_record(tok, {"content": t, "label": 3}, None) for t in raw]
    assert [s["label"] for s in samples] == [3, 3]
    batch = tok.collate(samples)
    assert torch.equal(batch["ids"], tok.collate([expected[0], expected[1]])["ids"])
    assert batch["labels"].tolist() == [3, 3]
    tokens = tok.tokenize(batch)
    assert tokens.values.shape == batch["ids"].shape and tokens.valid is not None


def test_bad_records_name_the_field(tok):
    with pytest.raises(DataError, match=r"field 'txt' is not UTF-8 text"):
        from_record(tok, {"txt": b"caf\xe9 latin-1"}, None)
    with pytest.raises(DataError, match=r"field 'text' holds '\\ud800' at character 3, a lone surrogate"):
        from_record(tok, {"text": "abc\ud800"}, None)
    with pytest.raises(DataError, match=r"field 'text' is blank"):
        from_record(tok, {"text": " \n\t "}, None)
    with pytest.raises(DataError, match=r"field 'text' is a list, expected text"):
        from_record(tok, {"text": ["a", "b"]}, None)
    with pytest.raises(DataError, match=r"no field 'text' / 'txt' / 'content'.*its fields: jpg"):
        from_record(tok, {"__key__": "1", "jpg": b"\xff\xd8"}, None)
    with pytest.raises(DataError, match=r"field 'cls' is .*expected an integer label"):
        from_record(tok, {"txt": b"ok", "cls": b"x"}, None)
