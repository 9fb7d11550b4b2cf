import json
import logging
import sysconfig
from pathlib import Path

import pytest

from mm_text import TextDemo, TextFiles, demo_paragraphs
from mm_text.data import docstring_documents
from mmcore.errors import ConfigError, DataError


def texts(ds):
    return [ds[i]["text"] for i in range(len(ds))]


def test_txt_paragraphs_lines_and_skipped_empties(tmp_path, caplog):
    f = tmp_path / "a.txt"
    f.write_text("First paragraph\nstill first.\n\n\n  \nSecond one.\n\nThird\n")
    assert texts(TextFiles(path=str(f), test_fraction=0).build(None, "train")) == ["First paragraph still first.", "Second one.", "Third"]
    with caplog.at_level(logging.WARNING, logger="mm_text"):
        lines = texts(TextFiles(path=str(f), unit="line", test_fraction=0).build(None, "train"))
    assert lines == ["First paragraph", "still first.", "Second one.", "Third"]
    assert "skipped 4 empty line(s)/document(s)" in caplog.text


def test_jsonl_documents_errors_and_chunks(tmp_path, caplog):
    f = tmp_path / "c.jsonl"
    rows = [{"text": "one two three four five"}, {"text": "   "}, {"body": "x", "text": "six"}]
    f.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    with caplog.at_level(logging.WARNING, logger="mm_text"):
        ds = TextFiles(path=str(f), chunk_words=2, test_fraction=0).build(None, "train")
    assert texts(ds) == ["one two", "three four", "five", "six"] and "skipped 2" in caplog.text
    with pytest.raises(DataError, match=r"c.jsonl: line 1: no 'body' string \(found keys \['text'\]\).*data.dataset.field"):
        TextFiles(path=str(f), field="body").build(None, "train")
    f.write_text('{"text": "ok"}\n{"text": 3}\n')
    with pytest.raises(DataError, match=r"c.jsonl: line 2: no 'text' string \(found 'text' is a int\)"):
        TextFiles(path=str(f)).build(None, "train")
    f.write_text('{"text": "ok"}\n{"text": "unterminated\n')
    with pytest.raises(DataError, match=r"c.jsonl: line 2: not JSON .*accepted: one JSON object per line"):
        TextFiles(path=str(f)).build(None, "train")


def test_non_utf8_names_file_and_line(tmp_path):
    f = tmp_path / "latin.txt"
    f.write_bytes("caf\u00e9 ok\nna\u00efve text\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin.txt: line 1 \(byte 3\): bytes b'\\xe9.*not valid utf-8; accepted: utf-8 text"):
        TextFiles(path=str(f)).build(None, "train")
    ds = TextFiles(path=str(f), encoding="latin-1", unit="line", test_fraction=0).build(None, "train")
    assert texts(ds) == ["caf\u00e9 ok", "na\u00efve text"]


def test_folder_split_and_missing(tmp_path):
    for i in range(10):
        (tmp_path / "sub").mkdir(exist_ok=True)
        (tmp_path / "sub" / f"{i}.txt").write_text(f"document number {i}\n")
    (tmp_path / "skip.md").write_text("not read")
    train = texts(TextFiles(path=str(tmp_path), test_fraction=0.3).build(None, "train"))
    test = texts(TextFiles(path=str(tmp_path), test_fraction=0.3).build(None, "test"))
    assert len(train) == 7 and len(test) == 3 and not set(train) & set(test)
    with pytest.raises(DataError, match="does not exist; accepted: a .txt/.jsonl file"):
        TextFiles(path=str(tmp_path / "nope")).build(None, "train")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no .txt or .jsonl file"):
        TextFiles(path=str(tmp_path / "empty")).build(None, "train")
    (tmp_path / "blank.txt").write_text("\n\n   \n")
    with pytest.raises(DataError, match="holds no non-empty document"):
        TextFiles(path=str(tmp_path / "blank.txt")).build(None, "train")
    with pytest.raises(ConfigError, match="data.dataset.path is required"):
        TextFiles().build(None, "train")


def test_demo_corpus_is_real_prose_and_split_by_document():
    paras = demo_paragraphs()
    assert len(paras) > 800 and sum(map(len, paras)) > 200_000 and len(set(paras)) == len(paras)
    assert any("assignment statement" in p.lower() for p in paras)
    train, test = TextDemo().build(None, "train"), TextDemo().build(None, "test")
    assert len(train) > 5 * len(test) > 0 and not set(texts(train)) & set(texts(test))


def test_demo_adds_the_standard_librarys_docstring_prose():
    docs = docstring_documents()
    assert len(docs) > 5000 and sum(len(d.text) for d in docs) > 800_000
    assert all(d.file.startswith("stdlib/") and d.file.endswith(".py") and d.line >= 1 for d in docs)
    assert not any("/test/" in d.file or d.file.startswith("stdlib/test/") for d in docs)
    first = next(d for d in docs if d.file == "stdlib/json/__init__.py")
    source = (Path(sysconfig.get_paths()["stdlib"]) / "json/__init__.py").read_text().splitlines()
    assert "JSON" in first.text and '"""' in source[first.line - 1]  # the line of its docstring
    small, large = TextDemo(docstrings=False), TextDemo()
    assert len(large.build(None, "train")) > 4 * len(small.build(None, "train"))
    train, test = set(texts(large.build(None, "train"))), set(texts(large.build(None, "test")))
    assert len(test) > 500 and not train & test  # split by document; a paragraph repeated in the library is kept once


def test_empty_and_blank_files_in_a_folder_raise_or_are_skipped_by_name(tmp_path):
    (tmp_path / "a.txt").write_text("Some real text.\n\nAnother paragraph.\n")
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "blank.jsonl").write_text("\n   \n" + json.dumps({"text": "  "}) + "\n")
    (tmp_path / "bad.jsonl").write_text('{"text": "fine"}\n{"txt": "typo"}\n')
    with pytest.raises(DataError, match=r"bad.jsonl: line 2: no 'text' string"):
        TextFiles(path=str(tmp_path), test_fraction=0).build(None, "train")
    (tmp_path / "bad.jsonl").unlink()
    with pytest.raises(DataError, match=r"blank.jsonl holds no non-empty document \(the file is empty or blank\).*on_error=skip"):
        TextFiles(path=str(tmp_path), test_fraction=0).build(None, "train")
    (tmp_path / "bad.jsonl").write_text('{"text": "fine"}\n{"txt": "typo"}\n')
    with pytest.warns(UserWarning, match=r"skipped 3 of 4 text files .*bad.jsonl: line 2.*blank.jsonl holds no non-empty.*empty.txt"):
        ds = TextFiles(path=str(tmp_path), test_fraction=0, on_error="skip").build(None, "train")
    assert texts(ds) == ["Some real text.", "Another paragraph."]
    with pytest.raises(ConfigError, match="on_error 'ignore' is unknown"):
        TextFiles(on_error="ignore")


def test_jsonl_surrogates_bom_and_deep_nesting(tmp_path):
    f = tmp_path / "c.jsonl"
    f.write_text('{"text": "ok"}\n{"text": "bad \\ud800 escape"}\n')
    with pytest.raises(DataError, match=r"c.jsonl: line 2: 'text' holds '\\ud800' at character 4, a lone surrogate"):
        TextFiles(path=str(f)).build(None, "train")
    f.write_bytes(b"\xef\xbb\xbf" + json.dumps({"text": "with a byte order mark"}).encode() + b"\n")
    assert texts(TextFiles(path=str(f), test_fraction=0).build(None, "train")) == ["with a byte order mark"]
    f.write_text("[" * 100_000 + "\n")
    with pytest.raises(DataError, match=r"c.jsonl: line 1: (JSON nested too deeply|not JSON)"):
        TextFiles(path=str(f)).build(None, "train")
