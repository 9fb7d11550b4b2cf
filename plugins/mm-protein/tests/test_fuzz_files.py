"""Fuzzing the FASTA reader with truncated and corrupted real files (plain and gzip).

Property: `parse_fasta` returns records whose sequences are non-empty and in the alphabet (and
tokenize), or raises a DataError naming the file; any other exception fails. MM_FUZZ_EXAMPLES sets
the cases per format (60 by default; a benchmark run uses 1000).
"""

import gzip
import warnings

import pytest
from hypothesis import given
from mm_protein import ProteinTokenizer, demo_records, parse_fasta
from mm_protein.alphabet import GAPS, RESIDUES
from mmcore.errors import DataError
from mmcore.testing import corrupted, fuzz_settings


def real_fasta() -> bytes:
    """The first 20 records of the demo proteome (pyhmmer's test data), 60 residues a line, with '*' ends."""
    lines = []
    for r in demo_records("proteome")[:20]:
        lines.append(f">{r.name} protein of {r.file.rsplit('/', 1)[-1]}")
        lines += [r.sequence[i : i + 60] for i in range(0, len(r.sequence), 60)]
        lines[-1] += "*"
    return ("\n".join(lines) + "\n").encode()


@pytest.mark.parametrize("name", ["seqs.fasta", "seqs.fa.gz"])
def test_corrupted_fasta_is_read_or_refused_by_name(tmp_path_factory, name):
    original = real_fasta()
    original = gzip.compress(original, mtime=0) if name.endswith(".gz") else original
    path = tmp_path_factory.mktemp("fuzz") / name
    tok, letters = ProteinTokenizer(max_length=4096), set(RESIDUES + GAPS)

    @fuzz_settings()
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
