"""The shared transformer: pre-norm blocks on `scaled_dot_product_attention`.

It knows no positions and no modality: embedders add positions before it, so
tokens of several modalities concatenate along N and nothing here changes.
The one exception is opt-in: ``TransformerConfig.rotary`` rotates queries and keys
by each token's row (ESM-2), for tokens kept in order (the BERT style).
Void tokens are excluded as attention keys through ``key_valid``; a plugin's
attention structure (``structure``: a [B, N, N] bool "may attend" mask or a
float additive bias [B, N, N] / [B, heads, N, N]) is combined with it. A batch
with no void token and no structure passes no mask at all, keeping the
FlashAttention kernel available.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmcore.errors import ConfigError

NORM_PLACEMENTS = ("pre", "post")  # TransformerConfig.norm_placement


@dataclass
class TransformerConfig:
    """Width, blocks (0: none, the final norm alone), heads (dividing ``dim``), MLP width / ``dim``.
    Their bounds are in `mmcore.config.BOUNDS`, checked before a block is built.

    ``class_token`` and ``norm_eps`` exist so that peers' weights (timm, transformers: `mmcore.interop`)
    give the same outputs here: a learned token prepended inside the encoder (its output is dropped, so
    the token count callers see is unchanged), and every LayerNorm's epsilon.

    ``norm_placement``: ``pre`` (default) normalises each sublayer's input and ends with a final norm;
    ``post`` (BERT) normalises after each residual sum, ``x = LN(x + f(x))``, with no final norm.

    ``dropout``: BERT's hidden and attention-probability dropout, active in training only; no weights,
    so models trained with and without it load into each other."""

    dim: int = 192
    depth: int = 12
    heads: int = 3
    mlp_ratio: float = 4.0
    class_token: bool = False
    norm_eps: float = 1e-6
    norm_placement: str = "pre"
    # rotary positions (ESM-2, RoFormer) on queries and keys by each token's row; no weights, so no keys
    rotary: bool = False
    rotary_base: float = 10000.0
    # BERT's hidden and attention-probability dropout (training only): small corpora overfit without it
    dropout: float = 0.0

    def num_params(self) -> int:
        """Weights of the blocks and final norm, computed without building them (the size guard)."""
        d, hidden = self.dim, int(self.dim * self.mlp_ratio)
        final = 2 * d if self.norm_placement != "post" else 0  # post-norm has no final norm
        return self.depth * (4 * d * d + 2 * d * hidden + 9 * d + hidden) + final + d * bool(self.class_token)


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.dropout = dropout  # on the attention probabilities, in training only
        if dim % heads:
            raise ValueError(f"transformer dim {dim} is not divisible by heads {heads}")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)  # one fused projection: one matmul, not three
        self.proj = nn.Linear(dim, dim)
        self.rotary_base: float | None = None  # set by Transformer for TransformerConfig.rotary

    def forward(self, x: Tensor, attn_mask: Tensor | None, queries: int | None = None) -> Tensor:
        """``queries``: compute outputs for the last ``queries`` rows only (keys and values from all)."""
        B, N, D = x.shape
        hd = D // self.heads
        if queries is None:
            qkv = self.qkv(x).view(B, N, 3, self.heads, hd).permute(2, 0, 3, 1, 4)  # [3, B, h, N, hd]
            q, k, v = qkv[0], qkv[1], qkv[2]
        else:
            w, b = self.qkv.weight, self.qkv.bias
            q = F.linear(x[:, N - queries :], w[:D], b[:D]).view(B, queries, self.heads, hd).transpose(1, 2)
            kv = F.linear(x, w[D:], b[D:]).view(B, N, 2, self.heads, hd).permute(2, 0, 3, 1, 4)
            k, v = kv[0], kv[1]
        if attn_mask is not None and attn_mask.is_floating_point():
            attn_mask = attn_mask.to(q.dtype)  # an additive bias must match the (autocast) query dtype
        if self.rotary_base is not None:  # ESM's order: queries scaled first, then rotated; no scaling after
            q, k = rotary(q * hd**-0.5, N - q.shape[2], self.rotary_base), rotary(k, 0, self.rotary_base)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=self.attention_dropout(), scale=1.0)
            return self.proj(out.transpose(1, 2).reshape(B, q.shape[2], D))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=self.attention_dropout())  # [B, h, Nq, hd]
        return self.proj(out.transpose(1, 2).reshape(B, q.shape[2], D))

    def attention_dropout(self) -> float:
        return self.dropout if self.training else 0.0


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: float, eps: float = 1e-6, post: bool = False, dropout: float = 0.0) -> None:
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.post = post  # BERT's post-norm: the norms follow the residual sums (same weights' keys)
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = Attention(dim, heads, dropout)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
        self.drop = nn.Dropout(dropout)  # on each branch's output before its residual sum, as BERT

    def forward(self, x: Tensor, attn_mask: Tensor | None, queries: int | None = None) -> Tensor:
        if self.post:  # x = LN(x + attn(x)); x = LN(x + mlp(x))
            h = self.drop(self.attn(x, attn_mask, queries))
            x = self.norm1((x if queries is None else x[:, x.shape[1] - queries :]) + h)
            return self.norm2(x + self.drop(self.mlp(x)))
        h = self.drop(self.attn(self.norm1(x), attn_mask, queries))
        x = x + h if queries is None else x[:, x.shape[1] - queries :] + h
        return x + self.drop(self.mlp(self.norm2(x)))


class Transformer(nn.Module):
    """[B, N, dim] → [B, N, dim]; ``key_valid`` [B, N] bool (False = void) or None;
    ``structure`` a plugin's attention mask or bias (see `attention_mask`) or None.

    ``keep_last=K`` returns only the last K rows [B, K, dim]: the final block
    then computes queries, projection and MLP for those rows alone (the MAE
    decoder needs outputs at hidden tokens only).

    With ``class_token`` a learned token is prepended (allowed to attend and be attended by all
    valid tokens) and dropped from the output, as timm's ``forward_features(x)[:, 1:]``.
    """

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        if not 0 < config.norm_eps < 1:
            raise ConfigError(f"norm_eps {config.norm_eps!r} is out of range; accepted: 0 < norm_eps < 1, such as 1e-6")
        if config.norm_placement not in NORM_PLACEMENTS:
            raise ConfigError(f"norm_placement {config.norm_placement!r} is unknown; accepted: {', '.join(NORM_PLACEMENTS)}")
        self.config = config
        post = config.norm_placement == "post"
        self.blocks = nn.ModuleList(
            Block(config.dim, config.heads, config.mlp_ratio, config.norm_eps, post, config.dropout) for _ in range(config.depth)
        )
        # post-norm ends normalised already (BERT has no final norm): no weights, so no keys for it
        self.norm = nn.Identity() if post else nn.LayerNorm(config.dim, eps=config.norm_eps)
        self.apply(_init_weights)
        if config.rotary and (config.dim // config.heads % 2 or not config.rotary_base > 1):
            raise ConfigError(
                f"rotary positions need an even head width (dim {config.dim} / heads {config.heads}) "
                f"and rotary_base > 1 (got {config.rotary_base!r})"
            )
        for block in self.blocks if config.rotary else ():
            block.attn.rotary_base = float(config.rotary_base)
        if config.class_token:  # created only when asked: existing models keep their weights' keys
            self.cls_token = nn.Parameter(torch.zeros(1, 1, config.dim))
            nn.init.normal_(self.cls_token, std=0.02)

    def forward(
        self,
        x: Tensor,
        key_valid: Tensor | None = None,
        keep_last: int | None = None,
        structure: Tensor | None = None,
        keep_prefix: bool = False,
    ) -> Tensor:
        """``keep_prefix``: keep the class token's output as row 0 (ViTMAE's decoder reads it)."""
        prefix = 1 if self.config.class_token else 0
        if prefix:
            x, key_valid, structure = with_prefix(self.cls_token.to(x.dtype), x, key_valid, structure)
        attn_mask = attention_mask(key_valid, structure)
        last_mask = attn_mask
        if keep_last is not None and attn_mask is not None and attn_mask.shape[-2] > 1:
            last_mask = attn_mask[..., attn_mask.shape[-2] - keep_last :, :]  # the last block's queries only
        for i, block in enumerate(self.blocks):
            last = i == len(self.blocks) - 1
            x = block(x, last_mask if last else attn_mask, keep_last if last else None)
        if keep_last is not None and not self.blocks:
            x = x[:, x.shape[1] - keep_last :]
        x = self.norm(x)
        return x[:, prefix:] if keep_last is None and not keep_prefix else x


def with_prefix(
    tokens: Tensor, x: Tensor, key_valid: Tensor | None, structure: Tensor | None
) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """``tokens`` [1, P, D] prepended to ``x`` [B, N, D]; ``key_valid`` and ``structure`` grown to match:
    the prefix is valid, may attend every key and be attended by every query (bias 0)."""
    B, P = x.shape[0], tokens.shape[1]
    x = torch.cat([tokens.expand(B, -1, -1), x], dim=1)
    if key_valid is not None:
        key_valid = torch.cat([key_valid.new_ones(B, P), key_valid], dim=1)
    if structure is not None:
        N = structure.shape[-1] + P
        grown = structure.new_full((*structure.shape[:-2], N, N), True if structure.dtype == torch.bool else 0)
        grown[..., P:, P:] = structure
        structure = grown
    return x, key_valid, structure


def attention_mask(key_valid: Tensor | None, structure: Tensor | None) -> Tensor | None:
    """The SDPA ``attn_mask`` for void keys and a plugin's structure; None when there is neither.

    ``key_valid`` [B, N] bool (False = void); ``structure`` [B, N, N] bool (True = query
    row may attend key column) or a float additive bias [B, N, N] or [B, heads, N, N].
    A query row left with no key would softmax over nothing (NaN): it attends to all.
    """
    if structure is None:
        if key_valid is None:
            return None
        key_valid = key_valid | ~key_valid.any(dim=1, keepdim=True)
        return key_valid[:, None, None, :]  # [B, 1, 1, N] broadcast over heads and queries
    if structure.dim() == 3:
        structure = structure[:, None]  # [B, 1, N, N]
    if structure.dtype == torch.bool:
        allowed = structure if key_valid is None else structure & key_valid[:, None, None, :]
        return allowed | ~allowed.any(dim=-1, keepdim=True)
    bias = structure if key_valid is None else structure.masked_fill(~key_valid[:, None, None, :], float("-inf"))
    return bias.masked_fill(torch.isneginf(bias).all(dim=-1, keepdim=True), 0.0)


def rotary(x: Tensor, start: int, base: float) -> Tensor:
    """Rotary positions on ``x`` [B, h, n, hd] whose rows are tokens ``start``, ..., ``start + n - 1``, as ESM-2
    (transformers' ``EsmRotaryEmbedding``) computes them: frequencies ``base ** (-2i / hd)`` in float32, the
    two halves of each head rotated (``rotate_half``), applied in float32 and cast back to ``x``'s dtype."""
    n, hd = x.shape[-2], x.shape[-1]
    inv_freq = 1.0 / (base ** (torch.arange(0, hd, 2, dtype=torch.float32, device=x.device) / hd))
    freqs = torch.arange(start, start + n, device=x.device, dtype=torch.float32)[:, None] * inv_freq
    angles = torch.cat((freqs, freqs), dim=-1)  # [n, hd]
    y = x.float()
    halves = torch.cat((-y[..., hd // 2 :], y[..., : hd // 2]), dim=-1)
    return (y * angles.cos() + halves * angles.sin()).to(x.dtype)


INITS = ("mae", "normal")


def initialise(parts: list[nn.Module], scheme: str) -> None:
    """``model.init``: ``mae`` keeps the xavier-uniform linears the parts were built with (the MAE
    reference); ``normal`` redraws every linear of ``parts`` from normal(0.02) with zero biases, as
    BERT, ESM and ViTMAE do. Token embedders are not passed: ViTMAE's patch projection is xavier too."""
    if scheme not in INITS:
        raise ConfigError(f"model.init {scheme!r} is unknown; accepted: {', '.join(INITS)}")
    if scheme == "normal":
        for part in parts:
            part.apply(_normal_init)


def _normal_init(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def _init_weights(module: nn.Module) -> None:
    """MAE's initialisation: xavier-uniform linears, zero biases, unit LayerNorms."""
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
