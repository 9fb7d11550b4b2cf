"""Text datasets: your .txt/.jsonl corpus, and an embedded demo corpus that needs no download.

Documents are split into train/test by a fixed-seed permutation *before*
they are chunked, so no document has text on both sides.
"""

from __future__ import annotations

import ast
import functools
import re
import sysconfig
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from torch.utils.data import Dataset

from mmcore.contract import check_split
from mmcore.errors import ConfigError, DataError
from mmcore.folders import keep_readable
from mmcore.records import as_int, as_text
from mmcore.records import field as record_field
from mmcore.splits import check_test_fraction, split_indices

from .files import Document, chunk_words, clean_text, corpus_files, read_nonempty, report_skipped

ON_ERROR = ("raise", "skip")


class Texts(Dataset):
    """Items ``{"text": str, "label": -1}``; ``docs`` keeps where each came from."""

    def __init__(self, docs: list[Document]) -> None:
        self.docs = docs

    def __len__(self) -> int:
        return len(self.docs)

    def __getitem__(self, i: int) -> dict:
        return {"text": self.docs[i].text, "label": -1}


TEXT_FIELDS = ("text", "txt", "content")
LABEL_FIELDS = ("label", "cls")


def from_record(tokenizer, record, generator=None) -> dict:
    """A streamed record as the datasets' sample ``{"text": str, "label": int}`` (`Modality.from_record`).

    Reads the text from the first of ``text``, ``txt``, ``content`` (a string, or UTF-8 bytes; a leading
    byte order mark dropped), whitespace folded as a .jsonl document's, and the optional label from
    ``label`` or ``cls`` (-1 without one). One record is one sample: a long document is not chunked
    but cut at the tokenizer's ``max_length``. Blank text is an error. Nothing is random.
    """
    name, value = record_field(record, TEXT_FIELDS)
    text = clean_text(as_text(value, name).removeprefix("\ufeff"), f"field {name!r}")
    if not text:
        raise DataError(f"field {name!r} is blank (no word); accepted: text with at least one word")
    label_name, label = record_field(record, LABEL_FIELDS, required=False)
    return {"text": text, "label": -1 if label_name is None else as_int(label, label_name)}


def split_documents(docs: list[Document], test_fraction: float, split: str, words: int) -> Texts:
    chosen = split_indices(len(docs), test_fraction, split, rng="torch")
    return Texts([piece for i in chosen for piece in chunk_words(docs[i], words)])


@dataclass
class TextFiles:
    """A .txt/.jsonl file or a folder of them (searched recursively).

    .txt: one document per paragraph (blank-line separated) or per line
    (``unit``); .jsonl: one JSON object per line, text under ``field``.
    Empty lines/documents are skipped and counted; documents longer than
    ``chunk_words`` words are split. ``on_error`` is about whole files:
    ``raise`` stops at the first file that cannot be used (not valid text, a
    bad .jsonl line, or no document at all: empty or blank) with its name;
    ``skip`` leaves such files out with one warning naming each and why.
    """

    path: str = "???"
    unit: str = "paragraph"
    field: str = "text"
    encoding: str = "utf-8"
    chunk_words: int = 96
    test_fraction: float = 0.05
    on_error: str = "raise"

    def __post_init__(self) -> None:
        check_test_fraction(self.test_fraction)
        if self.on_error not in ON_ERROR:
            raise ConfigError(f"data.dataset.on_error {self.on_error!r} is unknown; accepted: {', '.join(ON_ERROR)}")
        if self.chunk_words < 1:
            raise ConfigError(f"data.dataset.chunk_words {self.chunk_words!r} is invalid; accepted: an integer >= 1")

    def documents(self) -> list[Document]:
        if not self.path or self.path == "???":
            raise ConfigError("data.dataset.path is required; accepted: a .txt/.jsonl file or a folder, e.g. data.dataset.path=./corpus")
        counts: dict[str, int] = {}
        files, found = corpus_files(Path(self.path)), {}

        def read(f: Path) -> None:
            found[f] = read_nonempty(f, self.unit, self.field, self.encoding, counts)

        if self.on_error == "skip":
            files, _ = keep_readable(
                files, [-1] * len(files), read, "text", self.path, "UTF-8 (data.dataset.encoding) .txt/.jsonl files with text"
            )
        else:
            for f in files:
                read(f)
        report_skipped(str(self.path), counts.get("skipped", 0))
        return [d for f in files for d in found[f]]

    def build(self, tokenizer, split: str) -> Dataset:
        return split_documents(self.documents(), self.test_fraction, split, self.chunk_words)


def prose(text: str) -> Iterator[str]:
    """The blank-line separated paragraphs of ``text`` that read as English prose: at least 8 words,
    no interpreter session (``>>>``), and at least 88 % letters and spaces (no code or grammar)."""
    for block in re.split(r"\n\s*\n", text):
        paragraph = " ".join(line.strip() for line in block.split("\n")).strip()
        letters = sum(c.isalpha() or c.isspace() for c in paragraph)
        if len(paragraph.split()) >= 8 and ">>>" not in paragraph and letters >= 0.88 * len(paragraph):
            yield paragraph


@functools.lru_cache(maxsize=1)
def demo_paragraphs() -> tuple[str, ...]:
    """Prose paragraphs of the Python Language Reference that CPython ships for help().

    Source: ``pydoc_data/topics.py`` in the standard library (PSF License):
    about 1,100 distinct paragraphs, 290 KB of English. Code samples and
    grammar (indented, or mostly symbols) are left out.
    """
    from pydoc_data.topics import topics

    return tuple(dict.fromkeys(p for key in sorted(topics) for p in prose(topics[key])))


SKIPPED_LIBRARY_PARTS = {"test", "tests", "idlelib", "lib2to3", "turtledemo", "site-packages", "dist-packages"}


@functools.lru_cache(maxsize=1)
def docstring_documents() -> tuple[Document, ...]:
    """Prose paragraphs of the docstrings of the running Python's standard library (PSF License), read
    with `ast` (nothing is imported): about 8,600 paragraphs, 1.25 MB of English on CPython 3.11 (another
    Python version gives another corpus). Each names its file (relative to the library) and line; a
    paragraph is kept once, and not at all when `demo_paragraphs` already has it."""
    root = Path(sysconfig.get_paths()["stdlib"])
    docs: list[Document] = []
    seen = set(demo_paragraphs())
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root)
        if SKIPPED_LIBRARY_PARTS & set(relative.parts):
            continue
        try:
            with warnings.catch_warnings():  # e.g. invalid escape sequences in old modules: not the user's concern
                warnings.simplefilter("ignore")
                tree = ast.parse(path.read_bytes())
        except (SyntaxError, ValueError, OSError):  # a file this Python cannot parse is not part of the corpus
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and (text := ast.get_docstring(node)):
                for paragraph in prose(text):
                    if paragraph not in seen:
                        seen.add(paragraph)
                        docs.append(Document(paragraph, f"stdlib/{relative.as_posix()}", node.body[0].lineno))
    return tuple(docs)


@dataclass
class TextDemo:
    """The embedded demo corpus: no download. The Language Reference's prose (`demo_paragraphs`) and,
    with ``docstrings`` (the default), the standard library's docstring prose (`docstring_documents`):
    5x more text, without which the demo's model stops improving after about 1000 steps."""

    chunk_words: int = 96
    test_fraction: float = 0.1
    docstrings: bool = True

    def build(self, tokenizer, split: str) -> Dataset:
        docs = [Document(p, "pydoc_data/topics.py", i + 1) for i, p in enumerate(demo_paragraphs())]
        if self.docstrings:
            docs += docstring_documents()
        return split_documents(docs, self.test_fraction, split, self.chunk_words)


DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


@dataclass
class DigitWords:
    """The English word of each digit with its label (``{"text": "seven", "label": 7}``): the text side of
    paired digit demos (a joint recipe pairs it with MNIST images and spoken digits by label)."""

    per_label: int = 40  # copies of each word in the training split (a fifth of it in the test split)

    def build(self, tokenizer, split: str) -> list[dict]:
        check_split(split)
        if self.per_label < 1:
            raise ConfigError(f"data.dataset.per_label {self.per_label!r} is invalid; accepted: an integer >= 1")
        copies = self.per_label if split == "train" else max(1, self.per_label // 5)
        return [{"text": word, "label": digit} for digit, word in enumerate(DIGIT_WORDS) for _ in range(copies)]
