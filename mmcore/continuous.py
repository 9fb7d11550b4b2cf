"""Parts shared by modalities whose tokens are patches of real values (image, audio, video, ...).

A continuous tokenizer produces ``Tokens`` whose ``values`` are [B, N, D]
floats (one flattened patch per token) and whose ``positions`` are
[B or 1, N, A] coordinates on its grid (A axes: 2 for an image or a
spectrogram, 3 for video). The tokenizer exposes ``patch_dim`` (= D), from
which the embedder and the target size themselves, so none of the parts here
needs to import the plugin.

A plugin registers `RandomMasking` (usually as a subclass that only changes
the default ``ratio``) and `PatchTarget` under its own modality and target
names, and may build its structured policies on `PatchMasking`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmcore.contract import Embedder, Head, Tokens
from mmcore.errors import ConfigError
from mmcore.folders import keep_readable, list_class_folder, refusal  # noqa: F401  (moved; importable from here)
from mmcore.masking import hide_fraction_of_valid, hide_lowest, uniform_noise

EPS = 1e-6  # added to a patch's variance before the square root: flat patches stay finite


# -- positions -------------------------------------------------------------------


def sincos(positions: Tensor, dim: int) -> Tensor:
    """[..., N, A] coordinates → [..., N, dim] fixed sin-cos features.

    Each of the A axes gets an equal share of ``dim // (2A)`` frequencies (sin
    then cos); the few features left over when ``dim`` is not a multiple of 2A
    are zero. Computed from the positions themselves, so any grid size works
    with no table to interpolate and nothing cached across devices or graphs.
    """
    axes = positions.shape[-1]
    half = dim // (2 * axes)  # frequencies per axis
    if half == 0:
        return positions.new_zeros((*positions.shape[:-1], dim), dtype=torch.float32)
    omega = 1.0 / 10000 ** (torch.arange(half, device=positions.device, dtype=torch.float32) / half)
    angles = positions.to(torch.float32)[..., None] * omega  # [..., N, A, half]
    emb = torch.cat([angles.sin(), angles.cos()], dim=-1).flatten(-2)  # [..., N, A * 2 * half]
    return F.pad(emb, (0, dim - emb.shape[-1]))


# -- embedder, head, target --------------------------------------------------------


class PatchEmbedder(Embedder):
    """Linear patch projection plus positions: fixed sin-cos by default (MAE style).

    The input size is the tokenizer's ``patch_dim``. ``axes`` (set by a
    subclass) is the position dimensionality to check widths against: a
    ``dim`` that does not split into whole sin/cos pairs per axis is then a
    ConfigError; with None the leftover features are zero. The mask vector
    exists only in BERT style (``decoder_dim`` None), since DDP rejects
    parameters that never get a gradient.

    A tokenizer with ``positions`` "learned" or "fixed" (and a ``grid``, its trained
    patch grid) gets position tables instead, for the encoder and the MAE decoder,
    so peers' checkpoints load (timm's learned ``pos_embed``, ViTMAE's column-first
    sin-cos): "learned" trains them, "fixed" keeps them (a buffer). Fresh tables
    start at the sin-cos values, so a new model begins where the default does;
    they cover the trained grid only.
    """

    axes: int | None = None

    def __init__(self, tokenizer, dim: int, decoder_dim: int | None) -> None:
        super().__init__()
        self.positions = getattr(tokenizer, "positions", "sincos")
        if self.positions == "sincos":
            self._check_dim("encoder.dim", dim)
            if decoder_dim is not None:
                self._check_dim("decoder.dim", decoder_dim)
        self.dim, self.decoder_dim = dim, decoder_dim
        self.proj = nn.Linear(tokenizer.patch_dim, dim)
        nn.init.xavier_uniform_(self.proj.weight)  # MAE treats the patch projection like a linear layer
        nn.init.zeros_(self.proj.bias)
        if decoder_dim is None:  # BERT/SimMIM style: hidden patches become a learned vector
            self.mask_token = nn.Parameter(torch.empty(dim))
            nn.init.normal_(self.mask_token, std=0.02)
        if self.positions != "sincos":  # created only when asked: existing models keep their weights' keys
            self.grid = tuple(int(g) for g in tokenizer.grid)
            coords = torch.stack(torch.meshgrid(*(torch.arange(g, dtype=torch.float32) for g in self.grid), indexing="ij"), dim=-1).reshape(
                1, -1, len(self.grid)
            )
            self._table("pos_embed", sincos(coords, dim))
            if decoder_dim is not None:
                self._table("decoder_pos_embed", sincos(coords, decoder_dim))

    def _table(self, name: str, values: Tensor) -> None:
        if self.positions == "learned":
            setattr(self, name, nn.Parameter(values))
        else:
            self.register_buffer(name, values)

    def _check_dim(self, name: str, dim: int) -> None:
        step = 2 * self.axes if self.axes else 1
        if dim % step:
            raise ConfigError(
                f"model.{name} {dim} is not divisible by {step}, which {self.axes}-D sin-cos positions need; "
                f"accepted: multiples of {step} such as {max(step, dim // step * step)}"
            )

    def position_rows(self, tokens: Tokens, table: Tensor) -> Tensor:
        """[B or 1, N, D] rows of a position table at the tokens' grid coordinates."""
        grid = tokens.meta.get("grid")
        if grid is not None and tuple(grid) != self.grid:
            raise ValueError(
                f"a batch with a {tuple(grid)} patch grid; this model's position table "
                f"(tokenizer.positions={self.positions!r}) covers the trained grid {self.grid} only"
            )
        strides = [1] * len(self.grid)
        for i in range(len(self.grid) - 2, -1, -1):
            strides[i] = strides[i + 1] * self.grid[i + 1]
        index = (tokens.positions.long() * tokens.positions.new_tensor(strides, dtype=torch.long)).sum(-1)
        return table[0][index]

    def forward(self, tokens: Tokens, hidden: Tensor | None = None) -> Tensor:
        x = self.proj(tokens.values)  # [B, N, dim]
        if hidden is not None and self.decoder_dim is None:  # BERT/SimMIM style: a learned vector where hidden
            x = torch.where(hidden[..., None], self.mask_token.to(x.dtype), x)
        if self.positions != "sincos":
            return x + self.position_rows(tokens, self.pos_embed).to(x.dtype)
        return x + sincos(tokens.positions, self.dim).to(x.dtype)

    def decoder_positions(self, tokens: Tokens) -> Tensor:
        if self.positions != "sincos":
            return self.position_rows(tokens, self.decoder_pos_embed)
        return sincos(tokens.positions, self.decoder_dim)  # [1, N, decoder_dim]


class RegressionHead(Head):
    """Decoder states at hidden tokens → patch values with one linear layer, MSE per token."""

    def __init__(self, tokenizer, target, dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, target.dim(tokenizer))
        nn.init.xavier_uniform_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, states: Tensor) -> Tensor:
        return self.proj(states)  # [B, K, dim] → [B, K, D]

    def loss(self, pred: Tensor, target: Tensor) -> Tensor:
        """[B, K] float32 mean squared error per token (float32 before subtracting: no bf16 cancellation)."""
        return (pred.to(torch.float32) - target.to(torch.float32)).square().mean(dim=-1)


def patch_stats(values: Tensor) -> tuple[Tensor, Tensor]:
    """Per-patch mean and std over all of a patch's values, in float32: [B, N, 1] each."""
    v = values.to(torch.float32)
    return v.mean(dim=-1, keepdim=True), (v.var(dim=-1, keepdim=True) + EPS).sqrt()


@dataclass
class PatchTarget:
    """Predict each hidden patch's values; ``norm_pix`` scores its local contrast (values less
    their mean, over their std) instead of absolute level, which MAE found gives better features."""

    norm_pix: bool = True

    def dim(self, tokenizer) -> int:
        return tokenizer.patch_dim

    def __call__(self, tokens: Tokens) -> Tensor:
        values = tokens.values.to(torch.float32)  # [B, N, D]
        if not self.norm_pix:
            return values
        mean, std = patch_stats(values)
        return (values - mean) / std

    def to_values(self, pred: Tensor, tokens: Tokens, index: Tensor) -> Tensor:
        """Predictions [B, K, D] at token indices ``index`` [B, K] → token values [B, K, D]
        (the normalisation undone with the original patch's statistics)."""
        pred = pred.to(torch.float32)
        if not self.norm_pix:
            return pred
        original = tokens.values.gather(1, index[..., None].expand(-1, -1, tokens.values.shape[-1]))  # [B, K, D]
        mean, std = patch_stats(original)
        return pred * std + mean


# -- masking -----------------------------------------------------------------------


@dataclass
class PatchMasking:
    """Base of patch policies: checks ``ratio`` and hides the lowest scores.

    Without void tokens exactly ``num_hidden`` patches are hidden per sample
    (static shapes); with them, ``round(ratio × valid)`` real patches, never a
    void one.
    """

    ratio: float = 0.75

    def __post_init__(self) -> None:
        if not 0.0 <= self.ratio < 1.0:
            raise ConfigError(f"masking ratio {self.ratio!r} is out of range; accepted: 0 <= ratio < 1 (0 = plain features)")

    def num_hidden(self, num_tokens: int) -> int:
        return int(round(self.ratio * num_tokens))

    def hide(self, tokens: Tokens, scores: Tensor) -> Tensor:
        """[B, N] scores → [B, N] bool, True where hidden."""
        if tokens.valid is None:
            return hide_lowest(scores, self.num_hidden(tokens.num_tokens))
        return hide_fraction_of_valid(scores, self.ratio, tokens.valid)


@dataclass
class RandomMasking(PatchMasking):
    """Uniformly random patches (MAE): the hardest, cheapest-to-encode pretext at high ratios."""

    def __call__(self, tokens: Tokens, generator: torch.Generator | None = None, scores: Tensor | None = None) -> Tensor:
        noise = uniform_noise((tokens.batch_size, tokens.num_tokens), tokens.values.device, generator)
        return self.hide(tokens, noise)
