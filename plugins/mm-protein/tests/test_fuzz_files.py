"""Fuzzing the FASTA reader with truncated and corrupted real files (plain and gzip).

Property: `parse_fasta` returns records whose sequences are non-empty and in the alphabet (and
tokenize), or raises a DataError naming the file; any other exception fails. MM_FUZZ_EXAMPLES sets
the cases per format (60 by default; a benchmark run uses 1000).
"""

import gzip
import os
import warnings

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mm_protein import ProteinTokenizer, demo_records, parse_fasta
from mm_protein.alphabet import GAPS, RESIDUES
from mmcore.errors import DataError

EXAMPLES = int(os.environ.get("MM_FUZZ_EXAMPLES", "60"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))


@st.composite
def corrupted(draw, data: bytes) -> bytes:
    """``data`` after 1-3 edits: cut at an offset, bytes flipped, junk inserted or written over (header bytes favoured)."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.one_of(st.integers(0, 64), st.integers(0, max(0, len(out) - 1))))
        kind = draw(st.sampled_from(["truncate", "flip", "insert", "overwrite"]))
        if kind == "truncate":
            del out[at:]
        elif kind == "flip" and out:
            out[min(at, len(out) - 1)] ^= draw(st.integers(1, 255))
        else:
            junk = draw(st.binary(min_size=1, max_size=32))
            out[at:at + (len(junk) if kind == "overwrite" else 0)] = junk
    return bytes(out)


def real_fasta() -> bytes:
    """The first 20 records of the demo proteome (pyhmmer's test data), 60 residues a line, with '*' ends."""
    lines = []
    for r in demo_records()[:20]:
        lines.append(f">{r.name} protein of {r.file.rsplit('/', 1)[-1]}")
        lines += [r.sequence[i:i + 60] for i in range(0, len(r.sequence), 60)]
        lines[-1] += "*"
    return ("\n".join(lines) + "\n").encode()


@pytest.mark.parametrize("name", ["seqs.fasta", "seqs.fa.gz"])
def test_corrupted_fasta_is_read_or_refused_by_name(tmp_path_factory, name):
    original = real_fasta()
    original = gzip.compress(original, mtime=0) if name.endswith(".gz") else original
    path = tmp_path_factory.mktemp("fuzz") / name
    tok, letters = ProteinTokenizer(max_length=4096), set(RESIDUES + GAPS)

    @FUZZ
    @given(corrupted(original))
    def run(data):
        path.write_bytes(data)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a corruption may make a record look like DNA: a warning, not an error
                records = parse_fasta(path)
        except DataError as exc:
            assert str(path) in str(exc), exc
            return
        for r in records:
            assert r.sequence.strip(GAPS) and set(r.sequence) <= letters, r
        if records:
            ids = tok.collate([{"sequence": r.sequence} for r in records])["ids"]
            assert int(ids.min()) >= 0 and int(ids.max()) < tok.vocab_size

    run()
