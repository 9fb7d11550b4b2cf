"""Infilling for discrete-token models: one shared, modality-agnostic sampler.

Positions to fill are those whose id is the tokenizer's mask id
(``tokens.meta["mask_id"]``). `fill` decodes them iteratively in order of
confidence (MaskGIT, Chang et al. 2022): each step predicts every still-hidden
position, samples a token for each, and commits the most confident ones, so
that after step s of S about ``n · cos(π/2 · s/S)`` positions remain hidden.
``steps=1, temperature=0`` is one-shot argmax.

Sampling is done in float64: Gumbel-max on float32 logits truncates the noise
tail and lowers the effective temperature of masked-diffusion samplers
(Zheng et al. 2024), so logits are promoted before noise is added.

The model must be BERT style; the head runs at hidden positions only.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from mmcore.contract import Tokens
from mmcore.errors import ConfigError, DataError


def gather_hidden(hidden: Tensor) -> tuple[Tensor, Tensor]:
    """Slots of the hidden positions: index [B, K] (hidden first) and slot mask [B, K], K = most per row."""
    K = int(hidden.sum(dim=1).max().item()) if hidden.numel() else 0
    index = hidden.to(torch.int8).argsort(dim=1, descending=True, stable=True)[:, :K]
    return index, hidden.gather(1, index)


@torch.no_grad()
def hidden_logits(model, tokens: Tokens, hidden: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Logits at hidden positions with every hidden token shown as the mask id (no 80/10/10).

    Returns (logits [B, K, V] float32, index [B, K], slot [B, K] bool = a real hidden slot).
    """
    if model.style != "bert":
        raise ConfigError(f"infilling needs a BERT-style model; this one is {model.style!r} (set model.style=bert)")
    shown = Tokens(
        tokens.values.masked_fill(hidden, tokens.meta["mask_id"]),
        tokens.positions,
        tokens.valid,
        {k: v for k, v in tokens.meta.items() if k != "corrupted"},
    )
    states = model.encoder(model.embedder(shown, hidden), tokens.valid)  # [B, N, D]
    index, slot = gather_hidden(hidden)
    states = states.gather(1, index[..., None].expand(-1, -1, states.shape[-1]))
    return model.head(states).float(), index, slot


def sample_categorical(logits: Tensor, temperature: float, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Draw one id per row of ``logits`` [..., V] at ``temperature`` (0 = argmax), in float64.

    Returns (ids [...], probability of each chosen id under the model [...], float64).
    """
    logp = torch.log_softmax(logits.to(torch.float64), dim=-1)
    if temperature == 0:
        ids = logp.argmax(dim=-1)
    else:
        u = torch.rand(logp.shape, dtype=torch.float64, device=logp.device, generator=generator)
        gumbel = -torch.log(-torch.log(u.clamp_(min=torch.finfo(torch.float64).tiny, max=1 - 1e-16)))
        ids = (logp / temperature + gumbel).argmax(dim=-1)
    return ids, logp.gather(-1, ids[..., None])[..., 0].exp()


def remaining_after(step: int, steps: int, total: Tensor) -> Tensor:
    """MaskGIT's cosine schedule: how many of ``total`` [B] stay hidden after ``step`` (0-based)."""
    return (total.to(torch.float64) * math.cos(math.pi / 2 * (step + 1) / steps)).floor().long()


@torch.no_grad()
def fill(
    model, batch: dict[str, Tensor], steps: int = 8, temperature: float = 1.0, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """Fill every mask-id position of ``batch``; return (ids [B, N], filled [B, N] bool).

    ``steps`` rounds of confidence-ordered decoding (1 = one shot); ``temperature``
    0 takes the argmax. Ids outside ``meta["generate_ids"]`` are never produced.
    """
    if steps < 1:
        raise ConfigError(f"steps {steps!r} is invalid; accepted: an integer >= 1")
    if temperature < 0:
        raise ConfigError(f"temperature {temperature!r} is invalid; accepted: a number >= 0 (0 = argmax)")
    model.eval()
    tokens = model.tokenizer.tokenize(batch)
    valid = tokens.valid if tokens.valid is not None else torch.ones_like(tokens.values, dtype=torch.bool)
    hidden = (tokens.values == tokens.meta["mask_id"]) & valid
    filled = hidden.clone()
    total = hidden.sum(dim=1)
    lo, hi = tokens.meta.get("generate_ids", (0, model.tokenizer.vocab_size))
    ids = tokens.values.clone()
    for step in range(steps):
        if not hidden.any():
            break
        logits, index, slot = hidden_logits(model, Tokens(ids, tokens.positions, tokens.valid, tokens.meta), hidden)
        commit_confident(ids, hidden, logits, index, slot, (step, steps, total), (lo, hi), temperature, generator)
    return ids, filled


def commit_confident(
    ids: Tensor,
    hidden: Tensor,
    logits: Tensor,
    index: Tensor,
    slot: Tensor,
    schedule: tuple[int, int, Tensor],
    allowed: tuple[int, int],
    temperature: float,
    generator: torch.Generator | None,
) -> None:
    """One MaskGIT step, in place: sample an id for every hidden slot and commit the most confident ones.

    ``logits`` [B, K, V] at token ``index`` [B, K] (``slot`` False for padding slots); ``schedule`` is
    (step, steps, total hidden at the start [B]); ids outside ``allowed`` = (lo, hi) are never produced.
    """
    step, steps, total = schedule
    lo, hi = allowed
    logits[..., :lo] = float("-inf")
    logits[..., hi:] = float("-inf")
    chosen, confidence = sample_categorical(logits, temperature, generator)  # [B, K]
    still = hidden.sum(dim=1)
    commit = (still - remaining_after(step, steps, total)).clamp_min(1) if step < steps - 1 else still
    rank = confidence.masked_fill(~slot, -1.0).argsort(dim=1, descending=True).argsort(dim=1)  # 0 = most confident
    take = slot & (rank < commit[:, None])  # [B, K]
    ids.scatter_(1, index, torch.where(take, chosen, ids.gather(1, index)))
    hidden.scatter_(1, index, hidden.gather(1, index) & ~take)


def check_prompts(ids: Tensor, valid: Tensor | None, mask_id: int, names: list[str], mask_token: str) -> None:
    """A prompt with nothing to fill is a user error, named, before the model runs."""
    hidden = ids == mask_id
    if valid is not None:
        hidden &= valid
    empty = [names[i] for i in torch.nonzero(~hidden.any(dim=1)).flatten().tolist()]
    if empty:
        raise DataError(
            f"{', '.join(empty)}: no {mask_token} to fill; accepted: a prompt with at least one "
            f"{mask_token} where a token should be predicted"
        )
