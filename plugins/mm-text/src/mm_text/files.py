"""Reading text corpora: .txt (paragraphs or lines) and .jsonl (one document per line).

Every error names the file and line, what was found and what is accepted.
Empty lines and empty documents are skipped and counted (``Document`` lists
only real text; `skipped` says how many were dropped). A leading UTF-8 byte
order mark is dropped; bytes that are not valid in the encoding, a .jsonl
line that is not JSON, lacks the text field or holds text that is not valid
Unicode (lone surrogates from ``\\ud800`` escapes) are errors.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from mmcore.folders import refusal, visible_files
from mmcore.errors import ConfigError, DataError

log = logging.getLogger("mm_text")
EXTENSIONS = (".txt", ".jsonl")
UNITS = ("paragraph", "line")


@dataclass
class Document:
    text: str
    file: str
    line: int  # 1-based line where the document starts


def decode(path: Path, encoding: str = "utf-8") -> str:
    """The file's text; bytes that are not ``encoding`` are an error naming the line."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise refusal(f"cannot read text file {path}: {exc.strerror}; accepted: a readable .txt or .jsonl file", "unreadable") from None
    try:
        return data.decode(encoding).removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise refusal(
            f"{path}: line {line} (byte {exc.start}): bytes {data[exc.start : exc.start + 4]!r} are not valid {encoding}; accepted: "
            f"{encoding} text (convert it, e.g. iconv -f latin1 -t utf-8, or set data.dataset.encoding=latin-1)",
            "not text",
        ) from None
    except LookupError:
        raise ConfigError(
            f"data.dataset.encoding {encoding!r} is unknown; accepted: a Python codec name such as utf-8 or latin-1"
        ) from None


def read_documents(
    path: Path, unit: str = "paragraph", field: str = "text", encoding: str = "utf-8", counts: dict[str, int] | None = None
) -> list[Document]:
    """Documents of one .txt or .jsonl file; ``counts["skipped"]`` grows by the empty ones dropped."""
    if unit not in UNITS:
        raise ConfigError(f"data.dataset.unit {unit!r} is unknown; accepted: {', '.join(UNITS)}")
    text = decode(path, encoding)
    counts = counts if counts is not None else {}
    docs = _jsonl(path, text, field, counts) if path.suffix.lower() == ".jsonl" else _txt(path, text, unit, counts)
    return docs


def _txt(path: Path, text: str, unit: str, counts: dict[str, int]) -> list[Document]:
    docs, block, start = [], [], 0
    lines = text.splitlines()
    for i, line in enumerate(lines + [""], start=1):
        if unit == "line":
            if i <= len(lines):
                if line.strip():
                    docs.append(Document(line.strip(), str(path), i))
                else:
                    counts["skipped"] = counts.get("skipped", 0) + 1
            continue
        if line.strip():
            start = start or i
            block.append(line.strip())
        elif block:
            docs.append(Document(" ".join(block), str(path), start))
            block, start = [], 0
    return docs


def _jsonl(path: Path, text: str, field: str, counts: dict[str, int]) -> list[Document]:
    docs = []
    for i, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            counts["skipped"] = counts.get("skipped", 0) + 1
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise refusal(
                f"{path}: line {i}: not JSON ({exc.msg} at column {exc.colno}); accepted: one JSON object per line with a {field!r} string",
                "bad JSON line",
            ) from None
        except RecursionError:
            raise refusal(
                f"{path}: line {i}: JSON nested too deeply; accepted: one JSON object per line with a {field!r} string", "bad JSON line"
            ) from None
        value = record.get(field) if isinstance(record, dict) else None
        if not isinstance(value, str):
            found = f"keys {sorted(record)}" if isinstance(record, dict) else f"a {type(record).__name__}"
            if isinstance(record, dict) and field in record:
                found = f"{field!r} is a {type(value).__name__}"
            raise refusal(
                f"{path}: line {i}: no {field!r} string (found {found}); accepted: one JSON object per "
                f"line with a {field!r} string (set data.dataset.field to use another key)",
                "bad JSON line",
            )
        if not value.strip():
            counts["skipped"] = counts.get("skipped", 0) + 1
            continue
        docs.append(Document(clean_text(value, f"{path}: line {i}: {field!r}", "bad JSON line"), str(path), i))
    return docs


def clean_text(value: str, where: str, reason: str = "not text") -> str:
    """A document's text, runs of whitespace folded to one space; text that is not valid Unicode (a lone
    surrogate escape) is a DataError starting with ``where`` (counted under ``reason``)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise refusal(
            f"{where} holds {value[exc.start]!r} at character {exc.start}, a lone "
            "surrogate escape, not a character; accepted: valid Unicode text",
            reason,
        ) from None
    return " ".join(value.split())


def corpus_files(root: Path) -> list[Path]:
    """A file, or every .txt/.jsonl file under a folder (sorted, hidden ones left out)."""
    root = root.expanduser()
    if root.is_file():
        if root.suffix.lower() not in EXTENSIONS:
            raise DataError(f"{root} is not a .txt or .jsonl file; accepted: {', '.join(EXTENSIONS)} files or a folder of them")
        return [root]
    if not root.is_dir():
        raise DataError(f"text corpus {root} does not exist; accepted: a .txt/.jsonl file or a folder of them")
    files = [f for f in visible_files(root) if f.suffix.lower() in EXTENSIONS]
    if not files:
        raise DataError(f"text corpus folder {root} holds no .txt or .jsonl file; accepted: {', '.join(EXTENSIONS)}")
    return files


def chunk_words(doc: Document, words: int) -> list[Document]:
    """Split a long document into pieces of at most ``words`` words (so crops lose nothing)."""
    parts = doc.text.split()
    return [Document(" ".join(parts[i : i + words]), doc.file, doc.line) for i in range(0, len(parts), words)]


def read_nonempty(path: Path, unit: str, field: str, encoding: str, counts: dict[str, int]) -> list[Document]:
    """`read_documents`, but a file with no document (empty, blank-only) is an error naming it."""
    docs = read_documents(path, unit, field, encoding, counts)
    if not docs:
        raise refusal(
            f"{path} holds no non-empty document (the file is empty or blank); accepted: .txt/.jsonl files "
            "with text (in a folder, data.dataset.on_error=skip leaves such files out)",
            "empty",
        )
    return docs


def report_skipped(what: str, skipped: int) -> None:
    if skipped:
        log.warning("%s: skipped %d empty line(s)/document(s)", what, skipped)
