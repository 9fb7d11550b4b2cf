"""mm fill --fasta on a saved protein model."""

import pytest
import torch

from mmcore.cli import main
from mmcore.model import MaskedModel
from mmcore.testing import tiny_config


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    torch.manual_seed(0)
    model = MaskedModel(tiny_config("protein", "bert", tokenizer={"max_length": 24}))
    path = tmp_path_factory.mktemp("protein-model")
    model.save_pretrained(path)
    return str(path)


def test_fill_fasta_keeps_residues_and_fills_masks(folder, fasta, capsys):
    path = fasta(">one\nMKT<mask>AY\nik<mask>\n>two\n<mask><mask>GG*\n")
    assert main(["fill", folder, "--fasta", str(path), "--steps", "2", "--seed", "1"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == ">one" and out[2] == ">two" and len(out) == 4
    one, two = out[1], out[3]
    assert len(one) == 9 and one[:3] == "MKT" and one[4:8] == "AYIK" and two[2:] == "GG"
    assert all(c in "ACDEFGHIKLMNPQRSTVWY" for c in one[3] + one[8] + two[:2])
    assert main(["fill", folder, "MK<mask>V", "--argmax"]) == 0
    line = capsys.readouterr().out.strip()
    assert line[:2] == "MK" and line[3] == "V" and len(line) == 4


def test_fill_fasta_errors(folder, fasta, capsys):
    assert main(["fill", folder, "--fasta", str(fasta(">a\nMKTAY\n"))]) == 2
    assert "a: no <mask> to fill" in capsys.readouterr().err
    assert main(["fill", folder, "--fasta", str(fasta(">a\nMKJ<mask>\n", "bad.fa"))]) == 2
    assert "bad.fa: line 2: column 3: record 'a' holds 'J', not an amino acid" in capsys.readouterr().err
    assert main(["fill", folder, "--fasta", str(fasta(">long\n" + "M" * 30 + "<mask>\n", "long.fa"))]) == 2
    assert "record 'long' (line 1) has 31 residues; accepted: at most 24" in capsys.readouterr().err
    assert main(["fill", folder]) == 2
