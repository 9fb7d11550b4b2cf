"""Text ↔ word-piece ids through a Hugging Face `tokenizers` vocabulary.

Batches are padded to their longest sample, rounded up to a multiple of 8 (up
to ``max_length``) so that a compiled step sees few shapes; padding is void
(``valid`` False), so it is never attended to nor scored. Texts longer than
``max_length`` tokens are cut there (the readers split long documents into
chunks first).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from mmcore.contract import Tokens
from mmcore.errors import ConfigError, DataError

from .files import read_documents
from .vocab import KINDS, load_tokenizer, plain, special_ids, train_tokenizer

PAD_MULTIPLE = 8  # batches pad to a multiple of this (up to max_length), so compiled shapes repeat


@dataclass
class TextTokenizer:
    """Options (``model.tokenizer``): where the vocabulary comes from, and the length limit.

    path:          a tokenizer.json, or a folder with tokenizer.json or a BERT vocab.txt.
    train:         ``wordpiece`` or ``bpe``: learn a vocabulary of ``train_vocab_size``
                   on the training split instead (``fit``).
    tokenizer_json: filled by ``fit``: the whole vocabulary, so config.json restores it.
    norm_eps:      epsilon of the embedding LayerNorm and of the MLM head's LayerNorm (1e-6; a BERT
                   imported by ``mm import --from transformers`` sets its ``layer_norm_eps``, 1e-12).
    tie_embeddings: the MLM head's output matrix is the token embedding table (BERT's tied decoder;
                   the head keeps its own bias). Off by default.
    """

    path: str | None = None
    train: str | None = None
    train_vocab_size: int = 8000
    lowercase: bool = True
    max_length: int = 128
    tokenizer_json: str | None = None
    norm_eps: float = 1e-6
    tie_embeddings: bool = False

    def __post_init__(self) -> None:
        if self.max_length < 1:
            raise ConfigError(f"model.tokenizer.max_length {self.max_length!r} is invalid; accepted: an integer >= 1")
        if isinstance(self.norm_eps, bool) or not 0 < self.norm_eps < 1:
            raise ConfigError(
                f"model.tokenizer.norm_eps {self.norm_eps!r} is out of range; accepted: 0 < norm_eps < 1, such as 1e-6 (BERT: 1e-12)"
            )
        if self.train is not None and self.train not in KINDS:
            raise ConfigError(f"model.tokenizer.train {self.train!r} is unknown; accepted: {', '.join(KINDS)} or null")
        if self.path is not None and self.train is not None:
            raise ConfigError("model.tokenizer: set either path (an existing vocabulary) or train (learn one), not both")
        if self.path is None and self.train is None and self.tokenizer_json is None:
            raise ConfigError(
                "model.tokenizer: no vocabulary; accepted: path=<tokenizer.json or folder> "
                "or train=wordpiece|bpe (learned from the training data)"
            )
        self._tok = None
        if self.tokenizer_json is not None:
            from tokenizers import Tokenizer

            self._use(plain(Tokenizer.from_str(self.tokenizer_json)))
        elif self.path is not None:
            self._use(load_tokenizer(self.path, self.lowercase))

    def _use(self, tok) -> None:
        self._tok = tok
        ids = special_ids(tok)
        self.mask_id, self.pad_id, self.special = ids["mask"], ids["pad"], ids["specials"]
        self.mask_token = tok.id_to_token(self.mask_id)

    def fit(self, train_dataset) -> None:
        """Learn the vocabulary on the training texts (``train``), and keep it as JSON either way."""
        if self.tokenizer_json is None and self.train is not None:
            texts = (train_dataset[i]["text"] for i in range(len(train_dataset)))
            self._use(plain(train_tokenizer(texts, self.train, self.train_vocab_size, self.lowercase)))
        self.tokenizer_json = self.backend.to_str()

    @property
    def backend(self):
        if self._tok is None:
            raise ConfigError(
                "the text tokenizer has no vocabulary yet: it is learned by fit() on the training split "
                "(mm train does this); or set model.tokenizer.path"
            )
        return self._tok

    @property
    def vocab_size(self) -> int:
        return self.backend.get_vocab_size()

    def encode(self, texts: list[str]) -> list[Any]:
        return self.backend.encode_batch(list(texts), add_special_tokens=False)

    # -- data-loader side ---------------------------------------------------
    def placeholder(self, length: int | None = None) -> dict[str, Any]:
        """``length`` (default 1) mask tokens: the shape of a text a joint model predicts from other modalities."""
        return {"text": " ".join([self.mask_token] * (length or 1))}

    def collate(self, samples: list[dict[str, Any]]) -> dict[str, Tensor]:
        """{"text": str, "label": int} samples → ids [B, N], word_ids [B, N], valid [B, N] (only if padded)."""
        encodings = self.encode([s["text"] for s in samples])
        rows = [(e.ids[: self.max_length], word_numbers(e.word_ids[: self.max_length])) for e in encodings]
        N = max(1, max(len(ids) for ids, _ in rows))
        N = min(-(-N // PAD_MULTIPLE) * PAD_MULTIPLE, self.max_length)  # compiled shapes repeat
        ids = torch.full((len(rows), N), self.pad_id, dtype=torch.long)
        words = torch.full((len(rows), N), -1, dtype=torch.long)
        valid = torch.zeros((len(rows), N), dtype=torch.bool)
        for i, (row, w) in enumerate(rows):
            ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
            words[i, : len(w)] = torch.tensor(w, dtype=torch.long)
            valid[i, : len(row)] = True
        batch = {"ids": ids, "word_ids": words, "labels": torch.tensor([int(s.get("label", -1)) for s in samples])}
        if not valid.all():  # a batch without padding passes no mask: SDPA keeps its fast kernels
            batch["valid"] = valid
        return batch

    # -- device side ----------------------------------------------------------
    def tokenize(self, batch: dict[str, Tensor]) -> Tokens:
        ids = batch["ids"]
        positions = torch.arange(ids.shape[1], device=ids.device)[None, :, None]  # [1, N, 1]
        ordinary = ordinary_ids(self.special, self.vocab_size)
        meta = {"mask_id": self.mask_id, "random_ids": ordinary, "generate_ids": ordinary, "word_ids": batch["word_ids"]}
        return Tokens(values=ids, positions=positions, valid=batch.get("valid"), meta=meta)

    def detokenize(self, values: Tensor, tokens: Tokens) -> Tensor:
        """Token values → ids [B, N] (void positions hold the pad id)."""
        ids = values.round().long().clamp(0, self.vocab_size - 1)
        return ids if tokens.valid is None else ids.masked_fill(~tokens.valid, self.pad_id)

    # -- infilling (mm fill) ------------------------------------------------------
    def parse_prompt(self, text: str, name: str = "prompt") -> dict[str, Any]:
        """A prompt with [MASK] where words are to be filled; too long is an error, not a silent cut."""
        n = len(self.encode([text])[0].ids)
        if n > self.max_length:
            raise DataError(
                f"{name} is {n} tokens long; accepted: at most {self.max_length} tokens (model.tokenizer.max_length of this model)"
            )
        return {"text": text}

    def read_prompts(self, path: str) -> list[tuple[str, dict[str, Any]]]:
        """Prompts from a .txt (one per line) or .jsonl file, named by file and line."""
        docs = read_documents(Path(path), unit="line")
        return [(f"{Path(path).name} line {d.line}", self.parse_prompt(d.text, f"{path} line {d.line}")) for d in docs]

    def render(self, ids: list[int], name: str | None = None) -> str:
        return self.backend.decode(ids, skip_special_tokens=False)


def ordinary_ids(special: list[int], vocab_size: int) -> tuple[int, int]:
    """The longest run ``[lo, hi)`` of ids holding no special token: what BERT's random replacement draws
    from and what the sampler may produce. BERT's specials sit before it (0, 100-103), RoBERTa's
    ``<mask>`` is the very last id, so "after the highest special" would leave nothing there."""
    bounds = [-1, *sorted(special), vocab_size]
    lo, hi = max(((a + 1, b) for a, b in zip(bounds, bounds[1:])), key=lambda r: r[1] - r[0])
    return lo, hi


def word_numbers(word_ids: list[int | None]) -> list[int]:
    """The tokenizer's word index per token → 0, 1, 2, ... per sample; special tokens are words of their own."""
    out, prev, k = [], object(), -1
    for w in word_ids:
        if w is None or w != prev:
            k += 1
        out.append(k)
        prev = object() if w is None else w
    return out
