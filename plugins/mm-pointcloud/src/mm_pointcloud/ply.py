"""A strict PLY reader (ascii and binary): vertices and faces, every count checked.

open3d's PLY reader (RPly) fills what a truncated or damaged file lacks with
zeros and says so only on stderr, so a file whose header declares more
vertices than it holds loaded as real points plus zeros. Here the header is
parsed, each declared element is read in full or the file is refused, and a
file that holds more than its header declares is refused too: one line
naming the file, what was declared and what was found.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np

from mmcore.continuous import refusal

TYPES = {
    "char": "b",
    "int8": "b",
    "uchar": "B",
    "uint8": "B",
    "short": "h",
    "int16": "h",
    "ushort": "H",
    "uint16": "H",
    "int": "i",
    "int32": "i",
    "uint": "I",
    "uint32": "I",
    "float": "f",
    "float32": "f",
    "double": "d",
    "float64": "d",
}
FORMATS = {"ascii": "", "binary_little_endian": "<", "binary_big_endian": ">"}
ACCEPTED = "a PLY file (ascii or binary) whose header counts match its data, with x, y, z vertex properties"


@dataclass
class Element:
    name: str
    count: int
    props: list[tuple[str, str, str | None]] = field(default_factory=list)  # (name, type, list count type or None)


def _header(data: bytes, path) -> tuple[str, list[Element], int]:
    """(format, elements, offset of the data) from the ascii header up to ``end_header``."""
    end = data.find(b"end_header")
    if not data.startswith(b"ply") or end < 0:
        raise refusal(f"{path} is not a PLY file (no 'ply' ... 'end_header' header); accepted: {ACCEPTED}", "not a PLY file")
    newline = data.find(b"\n", end)
    body = len(data) if newline < 0 else newline + 1
    fmt, elements = None, []
    for number, line in enumerate(data[:end].decode("latin-1").splitlines()[1:], start=2):
        words = line.split()
        if not words or words[0] in ("comment", "obj_info"):
            continue
        bad = f"{path}: PLY header line {number} {line.strip()[:60]!r} is not valid; accepted: {ACCEPTED}"
        if words[0] == "format" and len(words) == 3 and words[1] in FORMATS and words[2] == "1.0":
            fmt = words[1]
        elif words[0] == "element" and len(words) == 3 and words[2].isdigit():
            elements.append(Element(words[1], int(words[2])))
        elif words[0] == "property" and elements and len(words) == 3 and words[1] in TYPES:
            elements[-1].props.append((words[2], TYPES[words[1]], None))
        elif (
            words[0] == "property"
            and elements
            and len(words) == 5
            and words[1] == "list"
            and words[2] in TYPES
            and words[3] in TYPES
            and TYPES[words[2]] not in "fd"
        ):
            elements[-1].props.append((words[4], TYPES[words[3]], TYPES[words[2]]))
        else:
            raise refusal(bad, "damaged PLY header")
    if fmt is None:
        raise refusal(f"{path}: PLY header has no valid 'format' line; accepted: {ACCEPTED}", "damaged PLY header")
    for element in elements:
        if not element.props:  # rows of nothing: nothing to read, and a count could not be checked
            raise refusal(f"{path}: PLY element {element.name!r} has no properties; accepted: {ACCEPTED}", "damaged PLY header")
    return fmt, elements, body


def _short(path, element: Element, rows: int) -> Exception:
    return refusal(
        f"{path}: the PLY header declares {element.count} {element.name} rows but the file ends after {rows}; "
        f"accepted: complete files (this one is truncated)",
        "truncated",
    )


def _binary(data: bytes, offset: int, element: Element, endian: str, path) -> tuple[list, int]:
    """One element's columns from binary data. Fast path: every row laid out like the first (fixed
    properties, lists as long as row 0's: triangle meshes); otherwise row by row."""
    lengths, size = _first_row(data, offset, element, endian)
    rows = min(element.count, (len(data) - offset) // max(size, 1))
    if rows == element.count and size:
        fields = []
        for i, ((_, t, count), n) in enumerate(zip(element.props, lengths)):
            fields += [(f"n{i}", endian + count), (f"f{i}", endian + t, (n,))] if count else [(f"f{i}", endian + t)]
        table = np.frombuffer(data, np.dtype(fields), element.count, offset)
        if all(not count or (table[f"n{i}"] == n).all() for i, ((_, _, count), n) in enumerate(zip(element.props, lengths))):
            return [table[f"f{i}"] for i in range(len(element.props))], offset + element.count * size
    elif all(count is None for _, _, count in element.props):
        raise _short(path, element, rows)
    columns: list[list] = [[] for _ in element.props]
    for row in range(element.count):  # lists of varying length (mixed polygons), or a truncated file
        for column, (_, t, count) in zip(columns, element.props):
            try:
                n = struct.unpack_from(endian + count, data, offset)[0] if count else 1
                offset += struct.calcsize(count) if count else 0
                if n < 0:
                    raise refusal(f"{path}: {element.name} row {row} has a list of {n} items; accepted: {ACCEPTED}", "damaged PLY data")
                value = struct.unpack_from(f"{endian}{n}{t}", data, offset)
            except struct.error:
                raise _short(path, element, row) from None
            offset += struct.calcsize(f"{endian}{n}{t}")
            column.append(value if count else value[0])
    return columns, offset


def _first_row(data: bytes, offset: int, element: Element, endian: str) -> tuple[list[int], int]:
    """List lengths (1 for plain properties) and byte size of an element's first row; a row that
    cannot be measured gets size 0, which sends `_binary` to its row-by-row loop and its messages."""
    lengths, size = [], 0
    for _, t, count in element.props:
        try:
            n = struct.unpack_from(endian + count, data, offset + size)[0] if count and element.count else 1
        except struct.error:
            return [], 0
        if n < 0:
            return [], 0
        lengths.append(n)
        size += (struct.calcsize(count) if count else 0) + n * struct.calcsize(t)
    return lengths, size if size <= len(data) else 0


def _ascii(lines: list[bytes], start: int, element: Element, path, cut: bool) -> tuple[list, int]:
    """One element's columns from ascii data: one row per line, every token a number; ``cut``: the
    file ends inside a line, so a bad last line is a truncation."""
    rows = lines[start : start + element.count]
    if len(rows) < element.count:
        raise _short(path, element, len(rows))
    lists = [count is not None for _, _, count in element.props]
    if rows and not any(lists[:-1]):
        try:  # fast path: numpy's parser, which checks every row has as many numbers as the first
            table = np.loadtxt(rows, dtype=np.float64, ndmin=2, comments=None)
            fixed = len(lists) - lists[-1]
            if not lists[-1] and table.shape[1] == len(lists):
                return list(table.T), start + element.count
            if lists[-1] and (table[:, fixed] == table.shape[1] - fixed - 1).all():  # lists as long in every row
                return list(table[:, :fixed].T) + [table[:, fixed + 1 :]], start + element.count
        except ValueError:
            pass  # the loop below finds the row to name
    words = [line.split() for line in rows]
    columns: list[list] = [[] for _ in element.props]
    for row, line in enumerate(words):
        try:
            at = 0
            for column, (_, _, count) in zip(columns, element.props):
                if count is None:
                    column.append(float(line[at]))
                    at += 1
                else:
                    n = int(line[at])
                    if n < 0 or at + 1 + n > len(line):
                        raise IndexError
                    column.append(tuple(float(w) for w in line[at + 1 : at + 1 + n]))
                    at += 1 + n
            if at != len(line):
                raise IndexError
        except (ValueError, IndexError):
            if cut and start + row + 1 == len(lines):  # the file's last line, cut short
                raise _short(path, element, row) from None
            found = b" ".join(line)[:60].decode("latin-1")
            raise refusal(
                f"{path}: {element.name} row {row} (data line {start + row + 1}) is {found!r}, which does not "
                f"match the header's properties {[p for p, _, _ in element.props]}; accepted: {ACCEPTED}",
                "damaged PLY data",
            ) from None
    return columns, start + element.count


def read_ply(path, data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """(vertices [V, 3] float64, triangles [T, 3] int64) of a PLY file's bytes; faces with more than three
    corners are fanned into triangles. Raises a DataError naming the file for anything inconsistent."""
    fmt, elements, offset = _header(data, path)
    lines = [line for line in data[offset:].splitlines() if line.strip()] if fmt == "ascii" else []
    at, found = (0 if fmt == "ascii" else offset), {}
    for element in elements:
        if fmt == "ascii":
            columns, at = _ascii(lines, at, element, path, cut=not data.endswith(b"\n"))
        else:
            columns, at = _binary(data, at, element, FORMATS[fmt], path)
        found[element.name] = {name: column for (name, _, _), column in zip(element.props, columns)}
    rest = len(lines) - at if fmt == "ascii" else len(data[at:].strip())
    if rest > 0:
        what = f"{rest} more line(s)" if fmt == "ascii" else f"{rest} more byte(s)"
        counts = ", ".join(f"{e.count} {e.name}" for e in elements)
        raise refusal(f"{path}: holds {what} than its PLY header declares ({counts}); accepted: {ACCEPTED}", "count mismatch")
    vertex = found.get("vertex", {})
    if not all(axis in vertex for axis in "xyz"):
        raise refusal(f"{path}: PLY has no vertex element with x, y and z properties; accepted: {ACCEPTED}", "no points")
    points = np.stack([np.asarray(vertex[axis], dtype=np.float64) for axis in "xyz"], axis=1).reshape(-1, 3)
    face = found.get("face", {})
    polygons = face.get("vertex_indices", face.get("vertex_index", []))
    return points, _triangles(polygons, len(points), path)


def _triangles(polygons, count: int, path) -> np.ndarray:
    """Faces (an [F, n] array from the fast paths, or index tuples of any length) → [T, 3] int64,
    polygons fanned into triangles; every corner must be a whole index below ``count``."""
    if isinstance(polygons, np.ndarray):
        groups = [(0, polygons.reshape(len(polygons), -1).astype(np.float64))]
    else:
        groups = [(row, np.asarray(c, dtype=np.float64).reshape(1, -1)) for row, c in enumerate(polygons)]
    triangles = []
    for first, corners in groups:
        ok = (corners >= 0) & (corners < count) & (corners == np.round(corners))
        bad = ~ok.all(axis=1) | (corners.shape[1] < 3)
        if bad.any():
            row = int(np.argmax(bad))
            raise refusal(
                f"{path}: face {first + row} has corners {corners[row][:8].tolist()}; accepted: 3 or more "
                f"vertex indices from 0 to {count - 1}",
                "damaged PLY data",
            )
        triangles += [corners[:, [0, k, k + 1]] for k in range(1, corners.shape[1] - 1)]
    return np.concatenate(triangles).astype(np.int64) if triangles else np.zeros((0, 3), np.int64)
