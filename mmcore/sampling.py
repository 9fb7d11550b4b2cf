"""Infilling for discrete-token models: shared, modality-agnostic samplers.

Positions to fill are those whose id is the tokenizer's mask id
(``tokens.meta["mask_id"]``). Three samplers fill them:

* `fill` decodes them iteratively in order of confidence (MaskGIT, Chang et
  al. 2022): each step predicts every still-hidden position, samples a token
  for each, and commits the most confident ones, so that after step s of S
  about ``n · cos(π/2 · s/S)`` positions remain hidden. ``steps=1,
  temperature=0`` is one-shot argmax. S model calls.
* `fill_first_hitting` runs the masked-diffusion reverse process exactly with
  the first-hitting sampler (FHS, Zheng et al. 2024): one uniformly chosen
  hidden position is unmasked per model call, n calls for n hidden tokens.
* `fill_token_by_token` is the discretised reverse process of MDLM (Sahoo et
  al. 2024) with S time steps, each masked position unmasked independently
  with probability 1/j at step j = S, ..., 1 in one categorical draw over the
  tokens and "stay masked": S model calls, exact only as S ≫ n. It is the
  reference FHS is measured against (``benchmarks/masked_diffusion.py``).

Sampling is done in float64 by default: Gumbel-max with float32 uniforms
truncates the noise tail at -log(-log(1 - 2^-24)) ≈ 16.6 and lowers the
effective temperature of masked-diffusion samplers (Zheng et al. 2024), so
logits are promoted and the noise drawn in float64. ``precision=torch.float32``
(`sample_categorical`, `fill_first_hitting`, `fill_token_by_token`) samples in
float32 to reproduce that effect.

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
def shown_states(model, tokens: Tokens, hidden: Tensor) -> Tensor:
    """Encoder states [B, N, D] with every hidden token shown as the mask id (no 80/10/10)."""
    if model.style != "bert":
        raise ConfigError(f"infilling needs a BERT-style model; this one is {model.style!r} (set model.style=bert)")
    shown = Tokens(
        tokens.values.masked_fill(hidden, tokens.meta["mask_id"]),
        tokens.positions,
        tokens.valid,
        {k: v for k, v in tokens.meta.items() if k != "corrupted"},
    )
    return model.encoder(model.embedder(shown, hidden), tokens.valid)


@torch.no_grad()
def hidden_logits(model, tokens: Tokens, hidden: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Logits at hidden positions with every hidden token shown as the mask id (no 80/10/10).

    Returns (logits [B, K, V] float32, index [B, K], slot [B, K] bool = a real hidden slot).
    """
    states = shown_states(model, tokens, hidden)  # [B, N, D]
    index, slot = gather_hidden(hidden)
    states = states.gather(1, index[..., None].expand(-1, -1, states.shape[-1]))
    return model.head(states).float(), index, slot


PRECISIONS = (torch.float64, torch.float32)


def check_precision(precision: torch.dtype) -> None:
    if precision not in PRECISIONS:
        raise ConfigError(f"precision {precision!r} is invalid; accepted: torch.float64 (exact) or torch.float32 (truncated noise)")


def gumbel_noise(shape: tuple[int, ...], device, generator: torch.Generator | None = None, precision=torch.float64) -> Tensor:
    """Gumbel(0, 1) noise ``-log(-log(u))`` with ``u`` uniform in ``precision``.

    float32 uniforms lie on a grid of 2^-24 below 1, so the float32 noise never exceeds
    ``-log(-log(1 - 2^-24))`` ≈ 16.64 (float64: ≈ 36.7): Gumbel-max sampling in float32 can hardly
    pick a token more than ~16 nats below the best one, however many such tokens there are.
    """
    check_precision(precision)
    u = torch.rand(shape, dtype=precision, device=device, generator=generator)
    below_one = 1 - 1e-16 if precision == torch.float64 else 1 - torch.finfo(precision).eps / 2
    return -torch.log(-torch.log(u.clamp_(min=torch.finfo(precision).tiny, max=below_one)))


def sample_categorical(
    logits: Tensor, temperature: float, generator: torch.Generator | None = None, precision: torch.dtype = torch.float64
) -> tuple[Tensor, Tensor]:
    """Draw one id per row of ``logits`` [..., V] at ``temperature`` (0 = argmax) by Gumbel-max, in
    ``precision`` (float64; float32 reproduces the truncated noise of float32 samplers).

    Returns (ids [...], probability of each chosen id under the model [...], in ``precision``).
    """
    logp = torch.log_softmax(logits.to(precision), dim=-1)
    if temperature == 0:
        ids = logp.argmax(dim=-1)
    else:
        ids = (logp / temperature + gumbel_noise(logp.shape, logp.device, generator, precision)).argmax(dim=-1)
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
    check_steps(steps)
    tokens, hidden, ids, allowed = fill_start(model, batch, temperature, torch.float64)
    filled = hidden.clone()
    total = hidden.sum(dim=1)
    for step in range(steps):
        if not hidden.any():
            break
        logits, index, slot = hidden_logits(model, Tokens(ids, tokens.positions, tokens.valid, tokens.meta), hidden)
        commit_confident(ids, hidden, logits, index, slot, (step, steps, total), allowed, temperature, generator)
    return ids, filled


def check_steps(steps: int) -> None:
    if steps < 1:
        raise ConfigError(f"steps {steps!r} is invalid; accepted: an integer >= 1")


def forbid_outside(logits: Tensor, allowed: tuple[int, int]) -> Tensor:
    """``logits`` [..., V] in place, every id outside ``allowed`` = (lo, hi) made impossible."""
    lo, hi = allowed
    logits[..., :lo] = float("-inf")
    logits[..., hi:] = float("-inf")
    return logits


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
    chosen, confidence = sample_categorical(forbid_outside(logits, allowed), temperature, generator)  # [B, K]
    still = hidden.sum(dim=1)
    commit = (still - remaining_after(step, steps, total)).clamp_min(1) if step < steps - 1 else still
    rank = confidence.masked_fill(~slot, -1.0).argsort(dim=1, descending=True).argsort(dim=1)  # 0 = most confident
    take = slot & (rank < commit[:, None])  # [B, K]
    ids.scatter_(1, index, torch.where(take, chosen, ids.gather(1, index)))
    hidden.scatter_(1, index, hidden.gather(1, index) & ~take)


def fill_start(model, batch: dict[str, Tensor], temperature: float, precision: torch.dtype):
    """(tokens, hidden [B, N] = mask-id ∩ valid, ids [B, N] to fill in place, allowed ids (lo, hi))."""
    if temperature < 0:
        raise ConfigError(f"temperature {temperature!r} is invalid; accepted: a number >= 0 (0 = argmax)")
    check_precision(precision)
    model.eval()
    tokens = model.tokenizer.tokenize(batch)
    valid = tokens.valid if tokens.valid is not None else torch.ones_like(tokens.values, dtype=torch.bool)
    hidden = (tokens.values == tokens.meta["mask_id"]) & valid
    return tokens, hidden, tokens.values.clone(), tokens.meta.get("generate_ids", (0, model.tokenizer.vocab_size))


def first_hitting_times(counts: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """When the masked-diffusion reverse process unmasks each of ``counts`` [B] hidden tokens: [B, K] float64,
    K = the most, decreasing from t = 1 (0 after a row's last unmasking).

    Under the forward process with mask probability t (MDLM's linear schedule) every hidden token was
    masked at its own uniform time, so with m tokens still masked at time t the next one is unmasked at
    the largest of m uniform times below t: ``t · u^(1/m)``, u ~ U(0, 1); which of the m it is, is uniform.
    A network that reads the time would be given these; mmcore's networks are time-agnostic (Zheng et
    al. 2024: the masked-diffusion ELBO and sampler need no time), so `fill_first_hitting` needs only
    the order and draws no time.
    """
    K = int(counts.max().item()) if counts.numel() else 0
    u = torch.rand((counts.shape[0], K), dtype=torch.float64, device=counts.device, generator=generator)
    left = counts[:, None] - torch.arange(K, device=counts.device)  # m: tokens masked before each unmasking
    log_t = torch.where(left > 0, torch.log(u.clamp_min(torch.finfo(torch.float64).tiny)) / left.clamp_min(1), 0.0).cumsum(dim=1)
    return torch.where(left > 0, log_t.exp(), 0.0)


@torch.no_grad()
def fill_first_hitting(
    model,
    batch: dict[str, Tensor],
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
    precision: torch.dtype = torch.float64,
) -> tuple[Tensor, Tensor]:
    """Fill every mask-id position of ``batch`` with the first-hitting sampler; return (ids [B, N], filled [B, N] bool).

    The exact masked-diffusion reverse process (Zheng et al. 2024), its empty steps skipped: each model
    call shows every still-hidden token as the mask id, picks ONE of them uniformly at random and draws
    its id from the model's categorical at ``temperature`` (0 = argmax) by Gumbel-max in ``precision``.
    A row with n hidden tokens is filled in exactly n calls, one id each; the batch makes max n calls
    (a finished row rides along unchanged). Ids outside ``meta["generate_ids"]`` are never produced. The unmasking
    times, which a time-conditioned network would read, are `first_hitting_times`.
    """
    tokens, hidden, ids, allowed = fill_start(model, batch, temperature, precision)
    filled = hidden.clone()
    rows = torch.arange(ids.shape[0], device=ids.device)
    while True:
        active = hidden.any(dim=1)  # [B]
        if not active.any():
            break
        scores = torch.rand(hidden.shape, dtype=torch.float64, device=ids.device, generator=generator)
        pick = scores.masked_fill(~hidden, -1.0).argmax(dim=1)  # [B] a uniform hidden position per row
        states = shown_states(model, Tokens(ids, tokens.positions, tokens.valid, tokens.meta), hidden)
        logits = model.head(states[rows, pick][:, None]).float()  # [B, 1, V] at the picked positions only
        chosen, _ = sample_categorical(forbid_outside(logits, allowed), temperature, generator, precision)  # [B, 1]
        ids[rows, pick] = torch.where(active, chosen[:, 0], ids[rows, pick])
        hidden[rows, pick] &= ~active
    return ids, filled


@torch.no_grad()
def fill_token_by_token(
    model,
    batch: dict[str, Tensor],
    steps: int,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
    precision: torch.dtype = torch.float64,
) -> tuple[Tensor, Tensor]:
    """Fill every mask-id position of ``batch`` with MDLM's discretised reverse process; return (ids, filled) as `fill`.

    ``steps`` = S time steps t_j = j/S, j = S, ..., 1 (mask probability t, MDLM's linear schedule). At step
    j each still-hidden position is unmasked with probability (t_j - t_{j-1}) / t_j = 1/j, to an id from the
    model's categorical at ``temperature``, in ONE Gumbel-max draw over the V ids (log p(v) + log 1/j) and
    "stay masked" (log(1 - 1/j)), as masked-diffusion samplers draw it; the last step unmasks whatever is
    left. Every step calls the model, whether or not it unmasks anything (S calls, fewer only if all is
    filled early; at most n of them change a row), where FHS's n calls do the same work exactly; here
    positions unmasked in the same step are drawn independently, which is exact only as S ≫ n.
    ``precision`` float32 draws the (V + 1)-way noise in float32: its truncated tail lowers the chance of
    rare ids and, at large S where every unmasking probability p(v)/j is small, of unmasking at all
    (Zheng et al. 2024). ``temperature`` 0 unmasks with probability 1/j to the argmax id. Ids outside
    ``meta["generate_ids"]`` are never produced.
    """
    check_steps(steps)
    tokens, hidden, ids, allowed = fill_start(model, batch, temperature, precision)
    filled = hidden.clone()
    for j in range(steps, 0, -1):
        if not hidden.any():
            break
        logits, index, slot = hidden_logits(model, Tokens(ids, tokens.positions, tokens.valid, tokens.meta), hidden)
        forbid_outside(logits, allowed)
        stay = math.log1p(-1 / j) if j > 1 else float("-inf")  # log P(still masked at t_{j-1} | masked at t_j)
        if temperature == 0:
            chosen = logits.argmax(dim=-1)
            odds = torch.tensor([-math.log(j), stay], dtype=precision, device=ids.device).expand(*chosen.shape, 2)
            unmask = (odds + gumbel_noise(odds.shape, ids.device, generator, precision)).argmax(dim=-1) == 0
        else:
            logp = torch.log_softmax(logits.to(precision) / temperature, dim=-1) - math.log(j)  # [B, K, V]
            joint = torch.cat([logp, torch.full_like(logp[..., :1], stay)], dim=-1)  # id V = stay masked
            chosen = (joint + gumbel_noise(joint.shape, ids.device, generator, precision)).argmax(dim=-1)
            unmask = chosen < logp.shape[-1]
        take = slot & unmask  # [B, K]
        ids.scatter_(1, index, torch.where(take, chosen, ids.gather(1, index)))
        hidden.scatter_(1, index, hidden.gather(1, index) & ~take)
    return ids, filled


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
