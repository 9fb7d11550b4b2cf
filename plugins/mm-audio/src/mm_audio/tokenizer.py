"""Audio ↔ spectrogram patch tokens: log-mel crops with a padding mask, cut into time×frequency patches."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from mmcore.contract import Tokens
from mmcore.errors import ConfigError, DataError

from .features import fbank

FIT_SAMPLES = 256  # clips used by `fit` to estimate the spectrogram mean and std
POSITIONS = ("sincos", "learned", "fixed")  # how the embedder places patches (PatchEmbedder)


def _positive_int(name: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"model.tokenizer.{name} {value!r} is invalid; accepted: a positive integer")
    return value


@dataclass
class FbankTokenizer:
    """Waveforms → fixed-length log-mel crops → [time, frequency] patches (AudioMAE).

    ``collate`` computes the filterbank of each clip (CPU, loader workers),
    crops it to ``target_frames`` or pads it, and records the real length;
    ``tokenize`` cuts the crop into patches whose positions are their
    (time, frequency) cell. Patches that lie wholly in padding are void.
    ``mean``/``std`` normalise the log-mel values; ``fit`` estimates them from
    the training split when they are not given.

    ``positions`` is how the embedder places patches: "sincos" (computed), or a
    table for the trained grid, "learned" (trained) or "fixed" (kept as loaded):
    what a timm ViT's ``pos_embed`` trained away from sin-cos needs (`mmcore.interop`).
    """

    sample_rate: int = 16000
    num_mel_bins: int = 128
    frame_shift_ms: float = 10.0
    frame_length_ms: float = 25.0
    target_frames: int = 1024  # 10.24 s at a 10 ms hop, as in AudioMAE
    patch_size: list[int] = field(default_factory=lambda: [16, 16])  # [time frames, mel bins]
    mean: float | None = None
    std: float | None = None
    positions: str = "sincos"

    def __post_init__(self) -> None:
        for name in ("sample_rate", "num_mel_bins", "target_frames"):
            _positive_int(name, getattr(self, name))
        if not 0 < self.frame_shift_ms <= self.frame_length_ms:
            raise ConfigError(
                f"model.tokenizer.frame_shift_ms {self.frame_shift_ms!r} / frame_length_ms {self.frame_length_ms!r} "
                "are invalid; accepted: 0 < frame_shift_ms <= frame_length_ms (e.g. 10 and 25)"
            )
        size = list(self.patch_size) if not isinstance(self.patch_size, (str, int)) else None
        if size is None or len(size) != 2 or not all(isinstance(s, int) and s > 0 for s in size):
            raise ConfigError(
                f"model.tokenizer.patch_size {self.patch_size!r} is invalid; accepted: [time, frequency] positive integers such as [16, 16]"
            )
        self.patch_size = [int(s) for s in size]
        pt, pf = self.patch_size
        if self.target_frames % pt or self.num_mel_bins % pf:
            raise ConfigError(
                f"model.tokenizer.target_frames {self.target_frames} / num_mel_bins {self.num_mel_bins} are not divisible by "
                f"patch_size {self.patch_size}; accepted: multiples, e.g. target_frames {max(pt, round(self.target_frames / pt) * pt)}"
            )
        if self.std is not None and self.std <= 0:
            raise ConfigError(f"model.tokenizer.std {self.std!r} is invalid; accepted: a positive number, or null to fit it")
        if self.positions not in POSITIONS:
            raise ConfigError(f"model.tokenizer.positions {self.positions!r} is invalid; accepted: {', '.join(POSITIONS)}")

    @property
    def grid(self) -> tuple[int, int]:
        """(time, frequency) patches of a ``target_frames`` crop: what a position table covers."""
        return self.target_frames // self.patch_size[0], self.num_mel_bins // self.patch_size[1]

    @property
    def patch_dim(self) -> int:
        return self.patch_size[0] * self.patch_size[1]

    # -- data-loader side ---------------------------------------------------
    def features(self, wave: Tensor) -> Tensor:
        """[T] waveform at ``sample_rate`` → [frames, num_mel_bins] log-mel."""
        return fbank(torch.as_tensor(wave), self.sample_rate, self.num_mel_bins, self.frame_shift_ms, self.frame_length_ms)

    def _spectrogram(self, sample: dict[str, Any]) -> Tensor:
        spec = sample.get("fbank")
        if spec is None:
            spec = self.features(sample["wave"])
        spec = torch.as_tensor(spec, dtype=torch.float32)
        if spec.ndim != 2 or spec.shape[1] != self.num_mel_bins or spec.shape[0] == 0:
            raise DataError(
                f"a spectrogram of shape {list(spec.shape)} does not fit the tokenizer; "
                f"accepted: [frames >= 1, {self.num_mel_bins}] (model.tokenizer.num_mel_bins)"
            )
        return spec

    def placeholder(self, length: int | None = None) -> dict[str, Any]:
        """A silent crop of ``target_frames``: the shape of a clip a joint model predicts from other modalities."""
        return {"fbank": torch.zeros(self.target_frames, self.num_mel_bins), "label": -1}

    def collate(self, samples: list[dict[str, Any]]) -> dict[str, Tensor]:
        """Samples {"wave": [T] at ``sample_rate`` (or "fbank": [frames, bins]), "label"} →
        {"fbank": [B, target_frames, bins], "labels": [B], "num_frames": [B] only if a clip is padded}."""
        T = self.target_frames
        pad = 0.0 if self.mean is None else float(self.mean)  # padding normalises to zero
        out = torch.full((len(samples), T, self.num_mel_bins), pad, dtype=torch.float32)
        lengths = []
        for i, sample in enumerate(samples):
            spec = self._spectrogram(sample)[:T]  # longer clips: the first T frames (datasets crop at random)
            out[i, : len(spec)] = spec
            lengths.append(len(spec))
        batch = {"fbank": out, "labels": torch.tensor([int(s.get("label", -1)) for s in samples], dtype=torch.long)}
        if min(lengths) < T:  # decided here on the CPU: a batch without padding passes no mask at all
            batch["num_frames"] = torch.tensor(lengths, dtype=torch.long)
        return batch

    def fit(self, dataset) -> None:
        """Mean and std of the log-mel values over (up to) ``FIT_SAMPLES`` evenly spaced training clips."""
        if self.mean is not None and self.std is not None:
            return
        count = min(len(dataset), FIT_SAMPLES)
        if count == 0:
            raise DataError("cannot fit the spectrogram statistics on an empty training split; accepted: at least one clip")
        step = len(dataset) / count
        n, total, squares = 0, 0.0, 0.0  # float64 running sums: no float32 overflow, no copy of every clip
        for index in (int(i * step) for i in range(count)):
            spec = self._spectrogram(dataset[index])
            if not bool(torch.isfinite(spec).all()):  # readers check samples; this catches other datasets and overflow
                files = getattr(dataset, "files", None)
                where = f" ({files[index]})" if files is not None else ""
                frame = int((~torch.isfinite(spec)).any(dim=1).nonzero()[0])
                raise DataError(
                    f"training sample {index}{where}: its log-mel spectrogram is not finite at frame {frame}, "
                    "so no statistics can be fitted; accepted: audio with finite samples (no NaN/Inf, "
                    "float samples within ±1000)"
                )
            spec = spec.to(torch.float64)
            n, total, squares = n + spec.numel(), total + float(spec.sum()), squares + float(spec.square().sum())
        mean = total / n
        std = math.sqrt(max(squares - n * mean * mean, 0.0) / max(n - 1, 1))  # unbiased, as torch.std
        if not (math.isfinite(mean) and math.isfinite(std)):
            raise DataError(
                f"the spectrogram statistics of {count} training clips are not finite (mean {mean}, std {std}); "
                "accepted: clips whose log-mel values are finite"
            )
        self.mean = mean if self.mean is None else self.mean
        self.std = max(std, 1e-6) if self.std is None else self.std

    # -- device side ----------------------------------------------------------
    def tokenize(self, batch: dict[str, Tensor]) -> Tokens:
        x = batch["fbank"]  # [B, T, F]
        B, T, F = x.shape
        pt, pf = self.patch_size
        if F != self.num_mel_bins or T % pt or F % pf:
            raise ValueError(
                f"spectrograms of shape {list(x.shape)} do not fit the tokenizer; accepted: [B, T, "
                f"{self.num_mel_bins}] with T a multiple of {pt}"
            )
        if self.mean is not None:
            x = (x - self.mean) / (self.std or 1.0)
        gt, gf = T // pt, F // pf
        values = x.reshape(B, gt, pt, gf, pf).permute(0, 1, 3, 2, 4).reshape(B, gt * gf, pt * pf)  # time-major
        t = torch.arange(gt, device=x.device, dtype=torch.float32)
        f = torch.arange(gf, device=x.device, dtype=torch.float32)
        positions = torch.stack(torch.meshgrid(t, f, indexing="ij"), dim=-1).reshape(1, gt * gf, 2)  # [1, N, 2]
        valid = None
        if "num_frames" in batch:  # a patch is void when it starts at or after the clip's last real frame
            starts = torch.arange(gt, device=x.device) * pt
            valid = (starts[None] < batch["num_frames"].to(x.device)[:, None]).repeat_interleave(gf, dim=1)  # [B, N]
        return Tokens(values=values, positions=positions, valid=valid, meta={"grid": (gt, gf), "patch_size": (pt, pf)})

    def detokenize(self, values: Tensor, tokens: Tokens) -> Tensor:
        """[B, N, pt*pf] → [B, T, F] log-mel (normalisation undone)."""
        gt, gf = tokens.meta["grid"]
        pt, pf = self.patch_size
        x = values.reshape(values.shape[0], gt, gf, pt, pf).permute(0, 1, 3, 2, 4).reshape(-1, gt * pt, gf * pf)
        if self.mean is not None:
            x = x * (self.std or 1.0) + self.mean
        return x
