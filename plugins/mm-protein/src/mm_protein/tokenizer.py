"""Protein sequences ↔ ESM-2 ids, padded per batch to a multiple of 8 (up to max_length), so a compiled step
sees few shapes; padding is void: never attended to nor scored."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mmcore.contract import Tokens
from mmcore.errors import ConfigError, DataError

from .alphabet import ACCEPTED, MASK, PAD, STANDARD, TOKENS, encode
from .fasta import parse_fasta

MASK_TOKEN = "<mask>"
PAD_MULTIPLE = 8  # batches pad to a multiple of this (up to max_length), so compiled shapes repeat


@dataclass
class ProteinTokenizer:
    """One token per residue. ``max_length`` is the model's limit: training crops
    longer sequences (the datasets take a random window), infilling refuses them."""

    max_length: int = 1024

    def __post_init__(self) -> None:
        if self.max_length < 1:
            raise ConfigError(f"model.tokenizer.max_length {self.max_length!r} is invalid; accepted: an integer >= 1")
        self.vocab_size, self.mask_id, self.pad_id, self.mask_token = len(TOKENS), MASK, PAD, MASK_TOKEN

    def ids(self, sequence: str, name: str = "sequence") -> np.ndarray:
        """Letters (and <mask> markers) → ids; anything else is an error naming the sequence."""
        parts = [encode(p) if p.isascii() else np.array([-1]) for p in sequence.split(MASK_TOKEN)]
        out = np.concatenate([np.append(p, MASK) for p in parts])[:-1] if parts else np.zeros(0, dtype=np.int64)
        if (out < 0).any():
            bad = next(c for c in sequence.replace(MASK_TOKEN, "") if not c.isascii() or encode(c)[0] < 0)
            raise DataError(f"{name}: holds {bad!r}, not an amino acid; accepted: {ACCEPTED}, and {MASK_TOKEN} in prompts")
        return out

    # -- data-loader side ---------------------------------------------------
    def placeholder(self, length: int | None = None) -> dict[str, Any]:
        """``length`` (default 1) mask tokens: the shape of a sequence a joint model predicts from other modalities."""
        return self.parse_prompt(self.mask_token * (length or 1), "placeholder")

    def collate(self, samples: list[dict[str, Any]]) -> dict[str, Tensor]:
        """{"sequence": str} samples → ids [B, N] and valid [B, N] (only if padded); cut at max_length."""
        rows = [self.ids(s["sequence"], s.get("name", f"sample {i}"))[: self.max_length] for i, s in enumerate(samples)]
        N = max(1, max(len(r) for r in rows))
        N = min(-(-N // PAD_MULTIPLE) * PAD_MULTIPLE, self.max_length)  # compiled shapes repeat
        ids = torch.full((len(rows), N), PAD, dtype=torch.long)
        valid = torch.zeros((len(rows), N), dtype=torch.bool)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.from_numpy(r)
            valid[i, : len(r)] = True
        batch = {"ids": ids, "labels": torch.tensor([int(s.get("label", -1)) for s in samples])}
        if not valid.all():
            batch["valid"] = valid
        return batch

    # -- device side ----------------------------------------------------------
    def tokenize(self, batch: dict[str, Tensor]) -> Tokens:
        ids = batch["ids"]
        positions = torch.arange(ids.shape[1], device=ids.device)[None, :, None]  # [1, N, 1]
        meta = {"mask_id": MASK, "random_ids": STANDARD, "generate_ids": STANDARD}
        return Tokens(values=ids, positions=positions, valid=batch.get("valid"), meta=meta)

    def detokenize(self, values: Tensor, tokens: Tokens) -> Tensor:
        ids = values.round().long().clamp(0, self.vocab_size - 1)
        return ids if tokens.valid is None else ids.masked_fill(~tokens.valid, PAD)

    # -- infilling (mm fill) ------------------------------------------------------
    def parse_prompt(self, text: str, name: str = "prompt") -> dict[str, Any]:
        sequence = "".join(text.split()).upper().replace(MASK_TOKEN.upper(), MASK_TOKEN)
        n = len(self.ids(sequence, name))
        if n > self.max_length:
            raise DataError(f"{name} has {n} residues; accepted: at most {self.max_length} "
                            f"(model.tokenizer.max_length of this model): split it or fill a window of it")
        return {"sequence": sequence, "name": name}

    def read_prompts(self, path: str) -> list[tuple[str, dict[str, Any]]]:
        """FASTA records with <mask> where residues are to be filled."""
        records = parse_fasta(Path(path), allow=(MASK_TOKEN,))
        return [(r.name, self.parse_prompt(r.sequence, f"{path}: record {r.name!r} (line {r.line})")) for r in records]

    def render(self, ids: list[int], name: str | None = None) -> str:
        sequence = "".join(TOKENS[i] for i in ids)
        return f">{name}\n{sequence}" if name else sequence
