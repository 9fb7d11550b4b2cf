"""Video clips ↔ tubelet tokens: pure reshapes on the batch's device, any frame count and size."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from mmcore.contract import Tokens
from mmcore.errors import ConfigError, DataError


def _ints(name: str, value: Any, n: int, example: str) -> list[int]:
    items = list(value) if not isinstance(value, (str, int)) else None
    if items is None or len(items) != n or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in items):
        raise ConfigError(f"model.tokenizer.{name} {value!r} is invalid; accepted: {n} positive integers such as {example}")
    return [int(v) for v in items]


@dataclass
class VideoTokenizer:
    """Cuts [B, C, T, H, W] clips into non-overlapping tubelets (VideoMAE: 2 frames × 16 × 16 pixels).

    Token values are per-channel normalised pixels in (frame, row, col,
    channel) order within a tubelet; positions are each tubelet's (t, row, col)
    cell. Clips may arrive as uint8 (what readers produce: 4x less to move)
    or float in [0, 1].
    """

    num_frames: int = 16
    image_size: list[int] = field(default_factory=lambda: [224, 224])  # [H, W]
    tubelet_size: list[int] = field(default_factory=lambda: [2, 16, 16])  # [frames, height, width]
    channels: int = 3
    mean: list[float] | None = None
    std: list[float] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.num_frames, int) or isinstance(self.num_frames, bool) or self.num_frames < 1:
            raise ConfigError(f"model.tokenizer.num_frames {self.num_frames!r} is invalid; accepted: a positive integer such as 16")
        self.image_size = _ints("image_size", self.image_size, 2, "[224, 224]")
        self.tubelet_size = _ints("tubelet_size", self.tubelet_size, 3, "[2, 16, 16]")
        pt, ph, pw = self.tubelet_size
        if self.num_frames % pt or self.image_size[0] % ph or self.image_size[1] % pw:
            raise ConfigError(
                f"model.tokenizer.num_frames {self.num_frames} / image_size {self.image_size} are not divisible by "
                f"tubelet_size {self.tubelet_size}; accepted: multiples of the tubelet's frames, height and width"
            )
        if self.channels not in (1, 3):
            raise ConfigError(f"model.tokenizer.channels {self.channels!r} is invalid; accepted: 1 (grayscale) or 3 (RGB)")
        for name in ("mean", "std"):
            value = getattr(self, name)
            if value is None:
                continue
            value = [float(v) for v in value]
            if len(value) != self.channels or (name == "std" and min(value) <= 0):
                raise ConfigError(
                    f"model.tokenizer.{name} {value} is invalid; accepted: one {'positive ' * (name == 'std')}"
                    f"number per channel ({self.channels}), or null"
                )
            setattr(self, name, value)

    @property
    def patch_dim(self) -> int:
        pt, ph, pw = self.tubelet_size
        return pt * ph * pw * self.channels

    # -- data-loader side ---------------------------------------------------
    def collate(self, samples: list[dict[str, Any]]) -> dict[str, Tensor]:
        """Stack samples {"video": [C, T, H, W] uint8 or float in [0, 1], "label"} into {"clips", "labels"}."""
        shapes = {tuple(s["video"].shape) for s in samples}
        if len(shapes) > 1:
            raise DataError(f"a batch holds clips of different shapes {sorted(shapes)}; accepted: one [C, T, H, W] per batch")
        videos = [torch.as_tensor(s["video"]) for s in samples]
        if any(v.dtype != torch.uint8 for v in videos):
            videos = [v.to(torch.float32) / 255.0 if v.dtype == torch.uint8 else v.to(torch.float32) for v in videos]
        labels = torch.tensor([int(s.get("label", -1)) for s in samples], dtype=torch.long)
        return {"clips": torch.stack(videos), "labels": labels}

    # -- device side ----------------------------------------------------------
    def _stats(self, x: Tensor) -> tuple[Tensor, Tensor] | None:
        if self.mean is None and self.std is None:
            return None
        mean = x.new_tensor(self.mean or [0.0] * self.channels).view(1, -1, 1, 1, 1)
        std = x.new_tensor(self.std or [1.0] * self.channels).view(1, -1, 1, 1, 1)
        return mean, std

    def tokenize(self, batch: dict[str, Tensor]) -> Tokens:
        x = batch["clips"]  # [B, C, T, H, W]
        x = x.to(torch.float32) / 255.0 if x.dtype == torch.uint8 else x
        B, C, T, H, W = x.shape
        pt, ph, pw = self.tubelet_size
        if C != self.channels or T % pt or H % ph or W % pw:
            raise ValueError(
                f"clips of shape {list(x.shape)} do not fit the tokenizer; accepted: [B, {self.channels}, T, H, W] "
                f"with T, H, W multiples of tubelet_size {self.tubelet_size}"
            )
        stats = self._stats(x)
        if stats is not None:
            x = (x - stats[0]) / stats[1]
        gt, gh, gw = T // pt, H // ph, W // pw
        values = x.reshape(B, C, gt, pt, gh, ph, gw, pw).permute(0, 2, 4, 6, 3, 5, 7, 1).reshape(B, gt * gh * gw, self.patch_dim)
        axes = [torch.arange(n, device=x.device, dtype=torch.float32) for n in (gt, gh, gw)]
        positions = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(1, gt * gh * gw, 3)
        return Tokens(values=values, positions=positions, valid=None, meta={"grid": (gt, gh, gw), "tubelet_size": (pt, ph, pw)})

    def detokenize(self, values: Tensor, tokens: Tokens) -> Tensor:
        """[B, N, pt*ph*pw*C] → [B, C, T, H, W] in [0, 1] pixel space (not clamped)."""
        gt, gh, gw = tokens.meta["grid"]
        pt, ph, pw = self.tubelet_size
        C, B = self.channels, values.shape[0]
        x = values.reshape(B, gt, gh, gw, pt, ph, pw, C).permute(0, 7, 1, 4, 2, 5, 3, 6).reshape(B, C, gt * pt, gh * ph, gw * pw)
        stats = self._stats(x)
        if stats is not None:
            x = x * stats[1] + stats[0]
        return x
