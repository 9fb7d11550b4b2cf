"""The ESM-2 alphabet, id for id, so token ids match ESM checkpoints and tokenizers.

<cls>=0 <pad>=1 <eos>=2 <unk>=3, the 20 standard amino acids (4-23) in ESM's
order, the ambiguity and rare codes X B U Z O (24-28), gap symbols '.' '-',
<null_1> and <mask>=32. Aligned FASTA's gaps '-' and '.' map to ESM's own gap tokens (30, 29).
"""

from __future__ import annotations

import numpy as np

TOKENS = [
    "<cls>",
    "<pad>",
    "<eos>",
    "<unk>",
    "L",
    "A",
    "G",
    "V",
    "S",
    "E",
    "R",
    "T",
    "I",
    "D",
    "P",
    "K",
    "Q",
    "N",
    "F",
    "Y",
    "M",
    "H",
    "W",
    "C",
    "X",
    "B",
    "U",
    "Z",
    "O",
    ".",
    "-",
    "<null_1>",
    "<mask>",
]
ID = {t: i for i, t in enumerate(TOKENS)}
CLS, PAD, EOS, UNK, MASK = ID["<cls>"], ID["<pad>"], ID["<eos>"], ID["<unk>"], ID["<mask>"]
STANDARD = (ID["L"], ID["C"] + 1)  # [lo, hi): the 20 standard amino acids
RESIDUES = "ACDEFGHIKLMNPQRSTVWY" + "XBZUO"  # letters a sequence may hold
GAPS = "-."  # alignment gaps (aligned FASTA, A2M/A3M): each is its own ESM token
NUCLEOTIDES = "ACGTUN"  # a sequence of only these letters is more likely DNA/RNA than protein
ACCEPTED = (
    "the 20 standard amino acids ACDEFGHIKLMNPQRSTVWY, the codes X B Z U O (any case) and the alignment gaps '-' '.' ('*' only at the end)"
)

_LOOKUP = np.full(128, -1, dtype=np.int64)
for _letter in RESIDUES + GAPS:
    _LOOKUP[ord(_letter)] = ID[_letter]
    _LOOKUP[ord(_letter.lower())] = ID[_letter]


def encode(sequence: str) -> np.ndarray:
    """Residue letters → ids; the caller has checked the letters (`fasta.check_residues`)."""
    codes = np.frombuffer(sequence.encode("ascii"), dtype=np.uint8)
    return _LOOKUP[codes]


def decode(ids) -> str:
    return "".join(TOKENS[i] for i in ids)
