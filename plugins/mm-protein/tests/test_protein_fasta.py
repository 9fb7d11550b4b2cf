import gzip
import logging

import pytest

from mm_protein import FastaFiles, ProteinDemo, ProteinTokenizer, demo_records, parse_fasta
from mmcore.errors import DataError


def test_multiline_lowercase_terminators_and_blank_lines(fasta):
    path = fasta(">sp|P1|ONE first protein\nMKTAY\nikqrq\n\n>two\r\nGSHM*\n>three desc\nXBZUO\nLL*\n")
    records = parse_fasta(path)
    assert [(r.name, r.sequence, r.line) for r in records] == [
        ("sp|P1|ONE", "MKTAYIKQRQ", 1), ("two", "GSHM", 5), ("three", "XBZUOLL", 7)]


@pytest.mark.parametrize("text,match", [
    (">a\nMKTJAY\n", r"in.fa: line 2: column 4: record 'a' holds 'J', not an amino acid; accepted: the 20 standard"),
    (">a\nMK-AY\n", r"line 2: column 3: record 'a' holds '-'"),
    (">a\nMKT\n>empty\n\n>c\nMK\n", r"in.fa: line 3: record 'empty' has no sequence"),
    (">a\n*\n", r"record 'a' has no sequence"),
    (">a\nMK*\nAY\n", r"line 3: record 'a' continues after its '\*' terminator"),
    ("MKT\n>a\nMK\n", r"line 1: sequence before the first '>' header"),
])
def test_bad_records_are_named(fasta, text, match):
    with pytest.raises(DataError, match=match):
        parse_fasta(fasta(text))


def test_skip_invalid_counts(fasta, caplog):
    path = fasta(">a\nMKT\n>bad\nMKJ\n>empty\n>c\nGG\n")
    with caplog.at_level(logging.WARNING, logger="mm_protein"):
        records = parse_fasta(path, skip_invalid=True)
    assert [r.name for r in records] == ["a", "c"] and "skipped 2 invalid FASTA record(s)" in caplog.text


def test_not_text_and_gzip(tmp_path):
    (tmp_path / "bin.fa").write_bytes(b">a\nMK\xff\xfeT\n")
    with pytest.raises(DataError, match=r"bin.fa: line 2: bytes .* are not text"):
        parse_fasta(tmp_path / "bin.fa")
    (tmp_path / "z.fa.gz").write_bytes(gzip.compress(b">z\nMKV\n"))
    assert parse_fasta(tmp_path / "z.fa.gz")[0].sequence == "MKV"


def test_esm2_alphabet_ids():
    tok = ProteinTokenizer()
    ids = tok.collate([{"sequence": "LAGCXBUZO<mask>"}])["ids"][0].tolist()
    assert ids == [4, 5, 6, 23, 24, 25, 26, 27, 28, 32]  # ESM-2: L=4 A=5 G=6 C=23, X B U Z O = 24-28, <mask>=32
    assert (tok.vocab_size, tok.pad_id, tok.mask_id) == (33, 1, 32)
    with pytest.raises(DataError, match=r"sample 1: holds 'J', not an amino acid"):
        tok.collate([{"sequence": "MK"}, {"sequence": "MJ"}])


def test_long_sequences_are_cropped_for_training(fasta):
    path = fasta(">long\n" + "MKTAYIAKQR" * 30 + "\n>short\nMKV\n")
    tok = ProteinTokenizer(max_length=50)
    train = FastaFiles(path=str(path), test_fraction=0).build(tok, "train")
    windows = {train[0]["sequence"] for _ in range(10)}
    assert all(len(w) == 50 for w in windows) and len(windows) > 1 and train[1]["sequence"] == "MKV"
    test = FastaFiles(path=str(path), test_fraction=0.5).build(tok, "test")
    assert [test[0]["sequence"]] == [test[0]["sequence"]] and len(test[0]["sequence"]) <= 50
    batch = tok.collate([{"sequence": "M" * 80}])  # a sample that bypassed the reader is cut, not passed on
    assert batch["ids"].shape == (1, 50)


def test_demo_proteome():
    records = demo_records()
    assert len(records) == 2100 and sum(len(r.sequence) for r in records) > 600_000
    assert all(set(r.sequence) <= set("ACDEFGHIKLMNPQRSTVWYXBZUO") for r in records)
    tok = ProteinTokenizer(max_length=128)
    train, test = ProteinDemo().build(tok, "train"), ProteinDemo().build(tok, "test")
    assert (len(train), len(test)) == (1890, 210)
    assert not {r.name for r in train.records} & {r.name for r in test.records}
