"""`from_record`: streamed records (webdataset and Hugging Face datasets forms) give the FASTA datasets' samples."""

import pytest
import torch

import mm_protein
from mm_protein import FastaFiles, ProteinTokenizer
from mm_protein.data import from_record
from mmcore.errors import DataError
from mmcore.plugins import Registry

# human ubiquitin (UniProt P0CG48, residues 1-76)
UBIQUITIN = "MQIFVKTLTGKTITLEVEPSDTIENVKAKIQDKEGIPPDQQRLIFAGKQLEDGRTLSDYNIQKESTLHLVLRLRGG"
TOK = ProteinTokenizer(max_length=32)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_registered():
    registry = Registry()
    assert registry.add_plugin(mm_protein, "protein").error is None
    assert registry.modality("protein").from_record is from_record and registry.streams("protein")


def test_both_record_forms_equal_the_fasta_sample(fasta):
    lines = UBIQUITIN.lower()[:40] + "\n" + UBIQUITIN[40:] + "*\n"  # multi-line, mixed case, a terminator
    train = FastaFiles(path=str(fasta(">sp|P0CG48|UBC_HUMAN Polyubiquitin-C\n" + lines)), test_fraction=0).build(TOK, "train")
    for seed in range(3):
        expected = train.get(0, gen(seed))
        webdataset = from_record(TOK, {"__key__": "000001", "seq": lines.encode(), "cls": b"2"}, gen(seed))
        fasta_member = from_record(TOK, {"fasta": (">P0CG48\n" + lines).encode()}, gen(seed))
        hf = from_record(TOK, {"sequence": UBIQUITIN, "label": 2, "id": "P0CG48"}, gen(seed))
        assert len(expected["sequence"]) == 32 and expected["label"] == -1
        assert webdataset == hf == {"sequence": expected["sequence"], "label": 2}
        assert fasta_member == expected
    assert len({from_record(TOK, {"sequence": UBIQUITIN}, gen(s))["sequence"] for s in range(8)}) > 1  # random windows
    short = from_record(TOK, {"text": "MKV-A."}, None)
    assert short == {"sequence": "MKV-A.", "label": -1}
    batch = TOK.collate([webdataset, short])
    assert batch["ids"].shape == (2, 32) and batch["valid"][1].sum() == 6
    assert torch.equal(batch["ids"][0], TOK.collate([expected])["ids"][0])
    tokens = TOK.tokenize(batch)
    assert tokens.values.shape == (2, 32)


@pytest.mark.parametrize(
    "record,match",
    [
        ({"sequence": "MKTJAYI"}, r"^field 'sequence': column 4: 'J' is not an amino acid; accepted: the 20 standard"),
        ({"seq": b"MKT\nA1Y"}, r"^field 'seq': line 2: column 2: '1' is not an amino acid"),
        ({"seq": b"MKT*\nAY"}, r"^field 'seq': line 2: the sequence continues after its '\*' terminator"),
        ({"fasta": b">a\nMKT\n>b\nAY"}, r"^field 'fasta': line 3: a second FASTA header"),
        ({"sequence": "--*"}, r"^field 'sequence' holds no sequence \(no residue\)"),
        ({"sequence": ""}, r"^field 'sequence' holds no sequence"),
        ({"txt": b"\xff\xfe"}, r"^field 'txt' is not UTF-8 text"),
        ({"sequence": 12}, r"^field 'sequence' is a int, expected text"),
        ({"__key__": "1", "jpg": b"\xff"}, r"^the record has no field 'sequence' / 'seq'.*its fields: jpg"),
        ({"sequence": "MKT", "label": "kinase"}, r"^field 'label' is .*expected an integer label"),
    ],
)
def test_bad_records_name_the_field(record, match):
    with pytest.raises(DataError, match=match):
        from_record(TOK, record, None)
