"""Images ↔ patch tokens: pure reshapes on the batch's device, any H×W."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from mmcore.contract import Tokens
from mmcore.errors import ConfigError, DataError


POSITIONS = ("sincos", "learned", "fixed")


def nearest_multiple(n: int, p: int) -> int:
    """The multiple of ``p`` closest to ``n`` (at least ``p``), for size hints."""
    return max(p, int(round(n / p)) * p)


@dataclass
class ImageTokenizer:
    """Cuts [B, C, H, W] images into non-overlapping patch_size² patches.

    Token values are per-channel normalised pixels in (row, col, channel)
    order within a patch; positions are each patch's (row, col) on the grid.
    The grid is read from the batch, so one model serves any size whose
    sides are multiples of ``patch_size``.

    ``positions`` is how the embedder places patches: "sincos" (computed, any
    size), or a table for the trained grid only, "learned" (trained) or "fixed"
    (kept as loaded): the form peers' checkpoints need (`mmcore.interop`).
    """

    image_size: list[int] = field(default_factory=lambda: [224, 224])  # [H, W] of training data
    patch_size: int = 16
    channels: int = 3
    mean: list[float] | None = None
    std: list[float] | None = None
    positions: str = "sincos"

    def __post_init__(self) -> None:
        p = self.patch_size
        if not isinstance(p, int) or isinstance(p, bool) or p < 1:
            raise ConfigError(f"model.tokenizer.patch_size {p!r} is invalid; accepted: a positive integer such as 16")
        size = list(self.image_size) if not isinstance(self.image_size, (str, int)) else None  # also OmegaConf lists
        if size is None or len(size) != 2 or not all(isinstance(s, int) and s > 0 for s in size):
            raise ConfigError(
                f"model.tokenizer.image_size {self.image_size!r} is invalid; "
                "accepted: [height, width] of positive integers such as [224, 224]"
            )
        if size[0] % p or size[1] % p:
            hint = [nearest_multiple(s, p) for s in size]
            raise ConfigError(
                f"model.tokenizer.image_size {size} is not divisible by model.tokenizer.patch_size {p}; "
                f"accepted: multiples of {p} such as {hint}"
            )
        self.image_size = [int(s) for s in size]
        if self.channels not in (1, 3):
            raise ConfigError(f"model.tokenizer.channels {self.channels!r} is invalid; accepted: 1 (grayscale) or 3 (RGB)")
        for name in ("mean", "std"):
            value = getattr(self, name)
            if value is None:
                continue
            value = [float(v) for v in value]
            if len(value) != self.channels:
                raise ConfigError(
                    f"model.tokenizer.{name} {value} has {len(value)} value{'s' * (len(value) != 1)}; accepted: one per channel "
                    f"({self.channels}, model.tokenizer.channels), or null"
                )
            if name == "std" and min(value) <= 0:
                raise ConfigError(f"model.tokenizer.std {value} has a value <= 0; accepted: positive numbers")
            setattr(self, name, value)
        if self.positions not in POSITIONS:
            raise ConfigError(f"model.tokenizer.positions {self.positions!r} is invalid; accepted: {', '.join(POSITIONS)}")

    @property
    def grid(self) -> tuple[int, int]:
        """(rows, cols) of patches at ``image_size``: what a position table covers."""
        return self.image_size[0] // self.patch_size, self.image_size[1] // self.patch_size

    @property
    def patch_dim(self) -> int:
        """Values per token: patch_size² × channels."""
        return self.patch_size * self.patch_size * self.channels

    # -- data-loader side ---------------------------------------------------
    def placeholder(self, length: int | None = None) -> dict[str, Any]:
        """A blank image of the trained size: the shape of an image a joint model predicts from other modalities."""
        return {"image": torch.zeros(self.channels, *self.image_size), "label": -1}

    def collate(self, samples: list[dict[str, Any]]) -> dict[str, Tensor]:
        """Stack samples {"image": [C, H, W] in [0, 1], "label": int} into a batch."""
        shapes = {tuple(s["image"].shape) for s in samples}
        if len(shapes) > 1:
            raise DataError(
                f"a batch holds images of different shapes {sorted(shapes)}; accepted: one shape per batch (resize or crop them)"
            )
        images = torch.stack([torch.as_tensor(s["image"], dtype=torch.float32) for s in samples])  # [B, C, H, W]
        labels = torch.tensor([int(s.get("label", -1)) for s in samples], dtype=torch.long)  # [B]
        return {"images": images, "labels": labels}

    # -- device side ----------------------------------------------------------
    def _stats(self, x: Tensor) -> tuple[Tensor, Tensor] | None:
        if self.mean is None and self.std is None:
            return None
        mean = x.new_tensor(self.mean or [0.0] * self.channels).view(1, -1, 1, 1)
        std = x.new_tensor(self.std or [1.0] * self.channels).view(1, -1, 1, 1)
        return mean, std

    def tokenize(self, batch: dict[str, Tensor]) -> Tokens:
        images = batch["images"]  # [B, C, H, W]
        B, C, H, W = images.shape
        p = self.patch_size
        if C != self.channels or H % p or W % p:
            raise ValueError(
                f"images of shape {list(images.shape)} do not fit the tokenizer; accepted: [B, {self.channels}, H, W] "
                f"with H and W multiples of patch_size {p}"
            )
        stats = self._stats(images)
        if stats is not None:
            images = (images - stats[0]) / stats[1]
        h, w = H // p, W // p
        values = images.reshape(B, C, h, p, w, p).permute(0, 2, 4, 3, 5, 1).reshape(B, h * w, p * p * C)  # [B, N, p*p*C]
        rows = torch.arange(h, device=images.device, dtype=torch.float32)
        cols = torch.arange(w, device=images.device, dtype=torch.float32)
        positions = torch.stack(torch.meshgrid(rows, cols, indexing="ij"), dim=-1).reshape(1, h * w, 2)  # [1, N, 2]
        return Tokens(values=values, positions=positions, valid=None, meta={"grid": (h, w), "patch_size": p})

    def detokenize(self, values: Tensor, tokens: Tokens) -> Tensor:
        """[B, N, p*p*C] token values → [B, C, H, W] pixels in [0, 1] space (not clamped)."""
        h, w = tokens.meta["grid"]
        p, C = self.patch_size, self.channels
        B = values.shape[0]
        images = values.reshape(B, h, w, p, p, C).permute(0, 5, 1, 3, 2, 4).reshape(B, C, h * p, w * p)
        stats = self._stats(images)
        if stats is not None:
            images = images * stats[1] + stats[0]
        return images
