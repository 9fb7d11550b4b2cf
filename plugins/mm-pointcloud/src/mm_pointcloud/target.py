"""Point targets: each group's K points relative to its centre; the Chamfer variant is a target option."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from mmcore.contract import Tokens
from mmcore.errors import ConfigError

CHAMFER = ("l2", "l1")


@dataclass
class PointTarget:
    """``chamfer``: "l2" (squared distances, Point-MAE's training loss) or "l1" (Euclidean distances)."""

    chamfer: str = "l2"

    def __post_init__(self) -> None:
        if self.chamfer not in CHAMFER:
            raise ConfigError(f"model.target.chamfer {self.chamfer!r} is unknown; accepted: {', '.join(CHAMFER)}")

    def dim(self, tokenizer) -> int:
        return tokenizer.group_size * 3

    def __call__(self, tokens: Tokens) -> Tensor:
        return tokens.values.to(torch.float32)  # [B, G, K*3]

    def to_values(self, pred: Tensor, tokens: Tokens, index: Tensor) -> Tensor:
        return pred.to(torch.float32)
