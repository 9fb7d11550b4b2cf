"""FastaFiles' and ProteinDemo's train/test splits are the ones drawn inline before mmcore.splits
(a torch permutation of the records, seed 0)."""

from types import SimpleNamespace

import torch

from mm_protein.data import FastaFiles, ProteinDemo, demo_records
from mm_protein.fasta import parse_fasta

TOKENIZER = SimpleNamespace(max_length=64)


def old_split(records, fraction, split):  # mm_protein/data.py split_records, before mmcore.splits
    order = torch.randperm(len(records), generator=torch.Generator().manual_seed(0)).tolist()
    num_test = int(round(fraction * len(records)))
    return [records[i] for i in sorted(order[:num_test] if split == "test" else order[num_test:])]


def test_protein_demo_split_is_unchanged():
    records = list(demo_records())
    for split in ("train", "test"):
        assert ProteinDemo().build(TOKENIZER, split).records == old_split(records, ProteinDemo.test_fraction, split)


def test_fasta_files_split_is_unchanged(tmp_path):
    path = tmp_path / "small.fasta"
    path.write_text("".join(f">p{i}\nMKT{'AVLG'[i % 4] * (i + 1)}\n" for i in range(57)))
    records = parse_fasta(path)
    for split in ("train", "test"):
        assert FastaFiles(path=str(path), test_fraction=0.15).build(TOKENIZER, split).records == old_split(records, 0.15, split)
