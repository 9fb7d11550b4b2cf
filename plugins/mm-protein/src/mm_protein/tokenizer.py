"""Protein sequences ↔ ESM-2 ids, padded per batch to a multiple of 8 (up to max_length), so a compiled step
sees few shapes; padding is void: never attended to nor scored.

The options after ``max_length`` exist so that ESM-2 weights (transformers' ``EsmForMaskedLM``,
`mm_protein.hf_esm`) give ESM's outputs here; their defaults leave every model as it was:
``ends`` wraps each sequence in ESM's ``<cls>`` ... ``<eos>``; the rest configure the protein
embedder and head (`mm_protein.layers`), which read them from the tokenizer they are built with."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mmcore.contract import Tokens
from mmcore.errors import ConfigError, DataError

from .alphabet import ACCEPTED, CLS, EOS, MASK, PAD, STANDARD, TOKENS, encode
from .fasta import parse_fasta

MASK_TOKEN = "<mask>"
PAD_MULTIPLE = 8  # batches pad to a multiple of this (up to max_length), so compiled shapes repeat
POSITIONS = ("learned", "none")  # ProteinTokenizer.positions


@dataclass
class ProteinTokenizer:
    """One token per residue. ``max_length`` is the model's limit in tokens: training crops
    longer sequences (the datasets take a random window), infilling refuses them.

    ``ends``: each sequence is ``<cls>`` residues ``<eos>`` as ESM feeds it (``max_length`` counts
    both, so ``max_residues`` is two less); ids, prompts and rendered sequences stay residues only.
    ``positions``: ``learned`` (a table of ``max_length`` rows added to the embeddings) or ``none``
    (the encoder's rotary positions, ``model.encoder.rotary``, place the tokens).
    ``embed_norm``: a LayerNorm on the embeddings (ESM-2 has none).
    ``token_dropout``: ESM's: ``<mask>`` embeddings are zeroed and the rest scaled by
    (1 - 0.15·0.8) / (1 - the row's share of ``<mask>``).
    ``norm_eps``: the epsilon of the embedder's and the head's LayerNorms.
    ``tie_embeddings``: the head's output matrix is the token embedding table (ESM's tied decoder;
    the head keeps its own bias)."""

    max_length: int = 1024
    ends: bool = False
    positions: str = "learned"
    embed_norm: bool = True
    token_dropout: bool = False
    norm_eps: float = 1e-6
    tie_embeddings: bool = False

    def __post_init__(self) -> None:
        if self.max_length < 1 + 2 * self.ends:
            raise ConfigError(
                f"model.tokenizer.max_length {self.max_length!r} is invalid; accepted: an integer >= "
                f"{1 + 2 * self.ends}" + (" (ends take two tokens)" if self.ends else "")
            )
        if self.positions not in POSITIONS:
            raise ConfigError(f"model.tokenizer.positions {self.positions!r} is invalid; accepted: {', '.join(POSITIONS)}")
        if not 0 < self.norm_eps < 1:
            raise ConfigError(f"model.tokenizer.norm_eps {self.norm_eps!r} is out of range; accepted: 0 < norm_eps < 1")
        self.vocab_size, self.mask_id, self.pad_id, self.mask_token = len(TOKENS), MASK, PAD, MASK_TOKEN

    @property
    def max_residues(self) -> int:
        """Residues a sequence may hold: ``max_length`` less the <cls> and <eos> of ``ends``."""
        return self.max_length - 2 * self.ends

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
        rows = [self.wrap(self.ids(s["sequence"], s.get("name", f"sample {i}"))[: self.max_residues]) for i, s in enumerate(samples)]
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

    def wrap(self, ids: np.ndarray) -> np.ndarray:
        """A sequence's residue ids as the model reads them: between <cls> and <eos> with ``ends``."""
        return np.concatenate([[CLS], ids, [EOS]]).astype(np.int64) if self.ends else ids

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
        if n > self.max_residues:
            ends = " less <cls> and <eos>" if self.ends else ""
            raise DataError(
                f"{name} has {n} residues; accepted: at most {self.max_residues} "
                f"(model.tokenizer.max_length of this model{ends}): split it or fill a window of it"
            )
        return {"sequence": sequence, "name": name}

    def read_prompts(self, path: str) -> list[tuple[str, dict[str, Any]]]:
        """FASTA records with <mask> where residues are to be filled."""
        records = parse_fasta(Path(path), allow=(MASK_TOKEN,))
        return [(r.name, self.parse_prompt(r.sequence, f"{path}: record {r.name!r} (line {r.line})")) for r in records]

    def render(self, ids: list[int], name: str | None = None) -> str:
        if self.ends and ids[:1] == [CLS] and ids[-1:] == [EOS]:
            ids = ids[1:-1]
        sequence = "".join(TOKENS[i] for i in ids)
        return f">{name}\n{sequence}" if name else sequence
