"""Whole-word masking: all word pieces of a word are hidden together (BERT-wwm).

Predicting "##ing" when "runn" is visible is too easy; hiding whole words
makes every scored piece need context. Words come from the tokenizer's
``word_ids``; the budget counts tokens, and a word that would overflow it is
left visible.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from mmcore.contract import Tokens
from mmcore.discrete import BertMasking, budget_of_valid, hide_whole_units, valid_of
from mmcore.masking import uniform_noise


@dataclass
class WholeWordMasking(BertMasking):
    def __call__(self, tokens: Tokens, generator: torch.Generator | None = None, scores: Tensor | None = None) -> Tensor:
        valid = valid_of(tokens)
        B, N = valid.shape
        words = tokens.meta["word_ids"].clamp_min(0)  # [B, N]
        word_rank = uniform_noise((B, N), valid.device, generator).argsort(dim=1).argsort(dim=1)  # a random order of words
        tie = torch.arange(N, device=valid.device, dtype=torch.float64) / (N + 1)  # < 1: pieces stay together, in order
        score = word_rank.gather(1, words) + tie
        return hide_whole_units(score, budget_of_valid(valid, self.ratio), valid, words)
