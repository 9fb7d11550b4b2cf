"""Reading fields of a streamed record, whichever engine produced it.

Hugging Face datasets yields ``{"image": {"bytes": b"...", "path": "x.png"}, "label": 3}``
(decoding off); a webdataset tar shard yields ``{"__key__": "000017", "png": b"...",
"cls": b"3"}``. A modality's ``from_record`` asks for the first of a few names
(``field(record, ("image", "png", "jpg"))``) and converts the value with
`as_bytes`, `as_text` or `as_int`, so one function serves both. Every failure is
a `DataError` naming the field and what was found; the core adds the shard and
record number.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mmcore.errors import DataError


class Encoded:
    """An encoded file held in memory (a record's field), passed where a reader takes a path: its
    ``str`` — what error messages print — is ``field 'png'``, and `open` gives a fresh file object."""

    def __init__(self, data: bytes, name: str) -> None:
        self.data, self.name = data, name

    def __str__(self) -> str:
        return f"field {self.name!r}"

    def open(self) -> io.BytesIO:
        return _Named(self.data, str(self))


class _Named(io.BytesIO):
    """A BytesIO whose repr (what decoders quote in their messages) names the field, not an address."""

    def __init__(self, data: bytes, label: str) -> None:
        super().__init__(data)
        self.label = label

    def __repr__(self) -> str:
        return f"<{self.label}>"


def field(record: Mapping[str, Any], names: Sequence[str], required: bool = True) -> tuple[str, Any]:
    """(name, value) of the first of ``names`` the record holds; (None, None) when none and not ``required``."""
    for name in names:
        if name in record and record[name] is not None:
            return name, record[name]
    if required:
        keys = ", ".join(sorted(k for k in record if not k.startswith("__"))) or "none"
        raise DataError(
            f"the record has no field {' / '.join(map(repr, names))} (its fields: {keys}); "
            f"rename one with data.dataset.columns={{yours: {names[0]}}}"
        )
    return None, None


def as_bytes(value: Any, name: str) -> bytes:
    """The bytes of an encoded file: raw bytes, datasets' undecoded ``{"bytes", "path"}``, or a path."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, Mapping):
        if value.get("bytes") is not None:
            return bytes(value["bytes"])
        if value.get("path"):
            return _read(value["path"], name)
    if isinstance(value, str) and value:
        return _read(value, name)
    raise DataError(f"field {name!r} is a {type(value).__name__}, expected an encoded file (bytes, {{'bytes': ...}} or a path)")


def _read(path: str, name: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise DataError(f"field {name!r} names the file {path}, which cannot be read: {exc.strerror or exc}") from None


def as_text(value: Any, name: str) -> str:
    """A string from a str, or UTF-8 bytes (a webdataset ``txt`` member)."""
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(f"field {name!r} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    raise DataError(f"field {name!r} is a {type(value).__name__}, expected text")


def as_int(value: Any, name: str) -> int:
    """An integer label from an int, or its decimal text (a webdataset ``cls`` member)."""
    if isinstance(value, bool):
        raise DataError(f"field {name!r} is a bool, expected an integer label")
    if isinstance(value, int):
        return value
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:  # a numpy or torch scalar
        return as_int(value.item(), name)
    try:
        return int(as_text(value, name).strip())
    except ValueError:
        raise DataError(f"field {name!r} is {str(value)[:40]!r}, expected an integer label") from None
