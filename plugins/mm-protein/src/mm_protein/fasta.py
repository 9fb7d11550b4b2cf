"""FASTA reading: multi-line records, any case, '*' terminators, alignment gaps, named errors.

A record is a '>' header line and the sequence lines up to the next header.
Letters outside the alphabet, text before the first header and records
without a residue are errors naming file, line and record; with
``skip_invalid`` such records are dropped and counted instead. Records that
look like DNA/RNA (`looks_nucleotide`) are read, with a warning naming the
file and how many: they are valid letters, but almost surely the wrong file.
"""

from __future__ import annotations

import gzip
import logging
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

from mmcore.folders import refusal

from .alphabet import ACCEPTED, GAPS, NUCLEOTIDES, RESIDUES

log = logging.getLogger("mm_protein")
_ALLOWED = set(RESIDUES + GAPS) | set(RESIDUES.lower())
NUCLEOTIDE_MIN = 10  # residues: a real peptide of only A C G T U N this long is vanishingly rare


@dataclass
class Record:
    name: str
    sequence: str  # upper case, no terminator
    file: str
    line: int  # line of the header


def read_text(path: Path) -> str:
    try:
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:
        raise refusal(
            f"cannot read FASTA file {path}: {exc}; accepted: a readable FASTA file (.fa, .fasta, .faa, optionally .gz)", "unreadable"
        ) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise refusal(
            f"{path}: line {line} (byte {exc.start}): bytes {data[exc.start : exc.start + 4]!r} are not text; "
            "accepted: a plain-text (UTF-8) FASTA file",
            "not text",
        ) from None


def parse_fasta(path: Path, skip_invalid: bool = False, allow: tuple[str, ...] = ()) -> list[Record]:
    """Records of ``path``; ``allow`` lists extra marker strings kept verbatim (prompts' <mask>)."""
    records, problems = [], 0
    name, start, chunks, error = None, 0, [], None

    def close() -> None:
        nonlocal problems
        if name is None:
            return
        seq = "".join(chunks)
        seq = seq[:-1] if seq.endswith("*") else seq
        problem = error or (
            None
            if seq.strip(GAPS)
            else f"{path}: line {start}: record {name!r} has no sequence (no residue); accepted: a header line followed by sequence lines"
        )
        if problem is None:
            records.append(Record(name, seq, str(path), start))
        elif skip_invalid:
            problems += 1
        else:
            raise refusal(problem, "invalid record")

    for i, raw in enumerate(read_text(path).splitlines(), start=1):
        line = raw.strip()
        if line.startswith(">"):
            close()
            name, start, chunks, error = line[1:].split(" ")[0] or f"record at line {i}", i, [], None
            continue
        if not line or line.startswith(";"):
            continue
        if name is None:
            raise refusal(
                f"{path}: line {i}: sequence before the first '>' header; accepted: FASTA records starting with a '>' line", "not FASTA"
            )
        if error is not None:
            continue
        if chunks and chunks[-1].endswith("*"):
            error = f"{path}: line {i}: record {name!r} continues after its '*' terminator; accepted: {ACCEPTED}"
            continue
        bad = invalid_letter(line, allow)
        if bad is not None:
            column = raw.find(bad) + 1
            error = f"{path}: line {i}: column {column}: record {name!r} holds {bad!r}, not an amino acid; accepted: {ACCEPTED}"
            continue
        chunks.append(line)
    close()
    if problems:
        log.warning("%s: skipped %d invalid FASTA record(s)", path, problems)
    for r in records:
        r.sequence = _upper(r.sequence, allow)
    nucleotide = [r for r in records if looks_nucleotide(r.sequence)]
    if nucleotide:
        warnings.warn(
            f"{path}: {len(nucleotide)} of {len(records)} record(s) look like DNA/RNA (only {', '.join(NUCLEOTIDES)}; "
            f"first: {nucleotide[0].name!r}, line {nucleotide[0].line}) and are read as protein; accepted: protein "
            "sequences (translate nucleotide sequences first)",
            stacklevel=2,
        )
    return records


def invalid_letter(line: str, allow: tuple[str, ...] = ()) -> str | None:
    """The first character of a sequence line outside the alphabet (markers in ``allow`` and a final
    '*' terminator aside), or None when every letter is accepted."""
    body = line
    for marker in allow:
        body = body.replace(marker, "")
    body = body[:-1] if body.endswith("*") else body
    return next((c for c in body if c not in _ALLOWED), None)


def read_sequence(text: str, where: str) -> str:
    """One sequence given as text (a streamed record's field): its lines joined, an optional '>' header
    line and ';' comments dropped, a final '*' dropped, every letter checked as `parse_fasta` does;
    upper case. Errors start with ``where``."""
    lines = text.splitlines()
    at = (lambda i: f"{where}: line {i}") if len(lines) > 1 else (lambda i: where)
    chunks, header = [], False
    for i, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith(";"):
            continue
        if line.startswith(">"):
            if header or chunks:
                raise refusal(
                    f"{at(i)}: a second FASTA header; accepted: one sequence (with at most one '>' header line before it)", "invalid record"
                )
            header = True
            continue
        if chunks and chunks[-1].endswith("*"):
            raise refusal(f"{at(i)}: the sequence continues after its '*' terminator; accepted: {ACCEPTED}", "invalid record")
        bad = invalid_letter(line)
        if bad is not None:
            raise refusal(f"{at(i)}: column {raw.find(bad) + 1}: {bad!r} is not an amino acid; accepted: {ACCEPTED}", "invalid record")
        chunks.append(line)
    seq = "".join(chunks)
    seq = seq[:-1] if seq.endswith("*") else seq
    if not seq.strip(GAPS):
        raise refusal(f"{where} holds no sequence (no residue); accepted: {ACCEPTED}", "invalid record")
    return seq.upper()


def looks_nucleotide(sequence: str) -> bool:
    """At least `NUCLEOTIDE_MIN` residues, all of them A C G T U or N (gaps aside)."""
    residues = sequence.replace("-", "").replace(".", "")
    return len(residues) >= NUCLEOTIDE_MIN and set(residues) <= set(NUCLEOTIDES)


def _upper(seq: str, allow: tuple[str, ...]) -> str:
    if not allow:
        return seq.upper()
    out, i = [], 0
    while i < len(seq):
        m = next((a for a in allow if seq.startswith(a, i)), None)
        out.append(m or seq[i].upper())
        i += len(m) if m else 1
    return "".join(out)
