"""Fuzzing the text readers with truncated and corrupted real .txt and .jsonl files.

Property: the reader returns documents of non-empty, valid Unicode text, or raises a DataError
naming the file; any other exception fails. MM_FUZZ_EXAMPLES sets the cases per format (60 by
default; a benchmark run uses 1000).
"""

import json
import os

import pytest
from hypothesis import given
from mm_text import demo_paragraphs
from mm_text.files import read_nonempty
from mmcore.errors import DataError
from mmcore.testing import corrupted, fuzz_settings


def real_corpus(suffix: str) -> bytes:
    """Twelve paragraphs of the demo corpus (CPython's language reference), with a non-ASCII line, as .txt or .jsonl."""
    paras = [*demo_paragraphs()[:12], "Naïve café — “quoted” text, 東京, emoji 🙂."]
    if suffix == ".jsonl":
        return "".join(json.dumps({"id": i, "text": p}, ensure_ascii=i % 2 == 0) + "\n" for i, p in enumerate(paras)).encode()
    return "\n\n".join(paras).encode()


@pytest.mark.parametrize("name,unit", [("corpus.txt", "paragraph"), ("corpus.txt", "line"), ("corpus.jsonl", "paragraph")])
def test_corrupted_text_is_read_or_refused_by_name(tmp_path_factory, name, unit):
    original = real_corpus(os.path.splitext(name)[1])
    path = tmp_path_factory.mktemp("fuzz") / name

    @fuzz_settings()
    @given(corrupted(original))
    def run(data):
        path.write_bytes(data)
        try:
            docs = read_nonempty(path, unit, "text", "utf-8", {})
        except DataError as exc:
            assert str(path) in str(exc), exc
            return
        assert docs
        for d in docs:
            assert isinstance(d.text, str) and d.text.strip() and d.file == str(path) and d.line >= 1
            d.text.encode("utf-8")  # valid Unicode: no lone surrogates

    run()
