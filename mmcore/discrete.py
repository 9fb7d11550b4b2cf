"""Parts shared by every discrete-token modality (text, protein, ...).

A discrete tokenizer produces ``Tokens`` whose ``values`` are [B, N] int64 ids
and whose ``meta`` holds plain facts about its vocabulary, so that policies,
the embedder, the head and the sampler in `mmcore.sampling` need no import of
the plugin:

* ``meta["mask_id"]``     the id that stands for a hidden token;
* ``meta["random_ids"]``  ``(lo, hi)``: ids BERT's 10% random replacement draws from;
* ``meta["generate_ids"]`` ``(lo, hi)``: ids the sampler may produce;
* ``meta["word_ids"]``    optional [B, N] int64, the word each token belongs to
  (numbered 0, 1, ... per sample), for whole-word and word-level span masking.

The tokenizer itself exposes ``vocab_size``, ``max_length`` and ``mask_id``
(the embedder's tables are sized from them).

The policies here are modality-agnostic; a plugin registers them under its
own modality name. Every count is computed on the device from valid lengths
(no host sync) and each policy hides at most ``num_hidden(N)`` per sample.

``FILL_COMMAND`` is ``mm fill``: a plugin whose tokenizer reads prompts
(``parse_prompt``, ``read_prompts``, ``render``) registers it through
``register_commands``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmcore.commands import Command
from mmcore.contract import Embedder, Head, Tokens
from mmcore.errors import ConfigError, DataError, MMCoreError
from mmcore.masking import uniform_noise
from mmcore.sampling import check_prompts, fill, fill_first_hitting


# -- budgets and ranking -------------------------------------------------------


def hidden_budget(ratio: float, num_tokens: int) -> int:
    """Upper bound of hidden tokens per sample: ``round(ratio * N)``, at least 1 when ratio > 0."""
    if ratio <= 0 or num_tokens == 0:
        return 0
    return min(num_tokens, max(1, int(round(ratio * num_tokens))))


def valid_of(tokens: Tokens) -> Tensor:
    """[B, N] bool valid mask, all True when the batch has no void token."""
    if tokens.valid is not None:
        return tokens.valid
    return torch.ones(tokens.values.shape[:2], dtype=torch.bool, device=tokens.values.device)


def budget_of_valid(valid: Tensor, ratio: Tensor | float) -> Tensor:
    """[B, 1] per-sample budget ``round(ratio * valid_length)``, at least 1 when ratio > 0 and there is a valid token."""
    length = valid.sum(dim=1, keepdim=True)
    budget = (length.to(torch.float32) * ratio).round().long()
    at_least = ((length > 0) & (torch.as_tensor(ratio, device=valid.device) > 0)).long()
    return torch.minimum(torch.maximum(budget, at_least), length)


FILL_PASSES = 3  # passes of `hide_whole_units` over the units that still fit


def hide_whole_units(scores: Tensor, budget: Tensor, valid: Tensor, units: Tensor | None) -> Tensor:
    """Hide the lowest-scoring valid tokens, at most ``budget`` [B, 1] per sample.

    ``units`` [B, N] (e.g. word ids) groups tokens that must be hidden together:
    a unit is hidden only if all of its tokens fit in the budget. Scores must
    keep a unit's tokens contiguous in rank order. A unit that does not fit is
    passed over, not an end: each of `FILL_PASSES` passes takes, in score order,
    the whole units that fit what is left of the budget (a single pass stopped at
    the first long word and hid about 80 % of the budget).
    """
    if units is None:
        ranks = scores.masked_fill(~valid, float("inf")).argsort(dim=1).argsort(dim=1)  # [B, N]
        return (ranks < budget) & valid
    units = units.clamp_min(0)
    size = torch.zeros_like(units).scatter_add(1, units, valid.long()).gather(1, units)  # [B, N] tokens in my unit
    hidden = torch.zeros_like(valid)
    for _ in range(FILL_PASSES):
        left = budget - hidden.sum(dim=1, keepdim=True)
        candidate = valid & ~hidden & (size <= left)
        ranks = scores.masked_fill(~candidate, float("inf")).argsort(dim=1).argsort(dim=1)
        src = ranks.masked_fill(~candidate, -1)  # other tokens never hold a unit back
        last = torch.zeros_like(ranks).scatter_reduce(1, units, src, reduce="amax", include_self=False)  # by unit
        hidden |= (last.gather(1, units) < left) & candidate
    return hidden


def _check_ratio(name: str, ratio: float, upper: float = 1.0) -> None:
    if not 0.0 <= ratio <= upper:
        raise ConfigError(f"{name} {ratio!r} is out of range; accepted: 0 <= {name.split('.')[-1]} <= {upper}")


# -- masking policies ----------------------------------------------------------


@dataclass
class BertMasking:
    """Random tokens (BERT/ESM): ``ratio`` of each sample's valid tokens hidden.

    ``corrupt`` (given a generator) shows the encoder ``mask_prob`` of them as the mask id,
    ``random_prob`` as a random id and the rest unchanged, so the encoder
    cannot rely on seeing [MASK] at every position it is scored on.
    """

    ratio: float = 0.15
    mask_prob: float = 0.8
    random_prob: float = 0.1

    def __post_init__(self) -> None:
        _check_ratio("model.masking.ratio", self.ratio, 0.999)
        _check_ratio("model.masking.mask_prob", self.mask_prob)
        _check_ratio("model.masking.random_prob", self.random_prob)
        if self.mask_prob + self.random_prob > 1.0 + 1e-9:
            raise ConfigError(
                f"model.masking.mask_prob {self.mask_prob} + random_prob {self.random_prob} exceed 1; "
                "accepted: mask_prob + random_prob <= 1 (the rest is kept unchanged)"
            )

    def num_hidden(self, num_tokens: int) -> int:
        return hidden_budget(self.ratio, num_tokens)

    def __call__(self, tokens: Tokens, generator: torch.Generator | None = None, scores: Tensor | None = None) -> Tensor:
        valid = valid_of(tokens)
        noise = uniform_noise(tuple(valid.shape), valid.device, generator)
        return hide_whole_units(noise, budget_of_valid(valid, self.ratio), valid, None)

    def corrupt(self, tokens: Tokens, hidden: Tensor, generator: torch.Generator | None = None) -> Tokens:
        """80/10/10 needs a random source: without a generator (a fixed mask passed in for
        evaluation) every hidden token is shown as the mask id, so outputs are deterministic."""
        if generator is None:
            return tokens
        return corrupt_ids(tokens, hidden, self.mask_prob, self.random_prob, generator)


def corrupt_ids(tokens: Tokens, hidden: Tensor, mask_prob: float, random_prob: float, generator: torch.Generator | None) -> Tokens:
    """BERT's 80/10/10 on the device; marks the result so the embedder does not mask it again."""
    ids = tokens.values
    u = uniform_noise((2, *ids.shape), ids.device, generator)
    lo, hi = tokens.meta["random_ids"]
    random_ids = (lo + u[1] * (hi - lo)).long().clamp_(lo, hi - 1)
    ids = torch.where(hidden & (u[0] < mask_prob), torch.full_like(ids, tokens.meta["mask_id"]), ids)
    ids = torch.where(hidden & (u[0] >= mask_prob) & (u[0] < mask_prob + random_prob), random_ids, ids)
    return replace(tokens, values=ids, meta={**tokens.meta, "corrupted": True})


@dataclass
class SpanMasking(BertMasking):
    """Contiguous spans (SpanBERT): lengths ~ Geometric(``p``) clipped to ``max_span``.

    Spans are counted in words where the tokenizer gives ``word_ids`` (a
    word is never split) and in tokens otherwise. Spans are drawn until the
    budget is met; the 80/10/10 corruption applies as in BERT.
    """

    p: float = 0.2
    max_span: int = 10

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 < self.p <= 1.0:
            raise ConfigError(f"model.masking.p {self.p!r} is out of range; accepted: 0 < p <= 1 (mean span length 1/p)")
        if self.max_span < 1:
            raise ConfigError(f"model.masking.max_span {self.max_span!r} is invalid; accepted: an integer >= 1")

    def __call__(self, tokens: Tokens, generator: torch.Generator | None = None, scores: Tensor | None = None) -> Tensor:
        valid = valid_of(tokens)
        B, N = valid.shape
        device = valid.device
        units = tokens.meta.get("word_ids")
        pos = units.clamp_min(0) if units is not None else torch.arange(N, device=device).expand(B, N)
        num_units = (pos.masked_fill(~valid, -1).amax(dim=1, keepdim=True) + 1).clamp_min(1)  # [B, 1]
        S = max(1, self.num_hidden(N))  # enough spans to fill any budget
        u = uniform_noise((2, B, S), device, generator)
        start = (u[0] * num_units).floor()  # [B, S] in units
        length = (torch.log1p(-u[1].clamp(max=1 - 1e-7)) / math.log1p(-min(self.p, 1 - 1e-7))).floor() + 1
        length = length.clamp(1, self.max_span)
        p = pos[:, None, :].to(torch.float32)  # [B, 1, N]
        covered = (p >= start[..., None]) & (p < (start + length)[..., None])  # [B, S, N]
        order = torch.arange(S, device=device, dtype=torch.float32).view(1, S, 1)
        span = torch.where(covered, order, float(S)).amin(dim=1)  # [B, N]: first span covering a token, S if none
        tie = torch.arange(N, device=device, dtype=torch.float64) / (N + 1)  # keeps units contiguous, in order
        # if the spans fall short, uncovered units follow in a random order (integer ranks keep units contiguous)
        unit_rank = uniform_noise((B, N), device, generator).argsort(dim=1).argsort(dim=1).gather(1, pos)
        score = torch.where(span < S, span.double() + tie, S + unit_rank + tie)
        return hide_whole_units(score, budget_of_valid(valid, self.ratio), valid, units)


@dataclass
class DiffusionMasking:
    """Masked-diffusion training (MDLM-style): a mask ratio t ~ U(min_ratio, ratio), one per batch or one per sample.

    With one t per batch each sample hides ``round(t * valid_length)`` tokens (at least 1), all shown as the
    mask id (no 80/10/10), so the model learns to unmask at every noise level, which is what iterative
    infilling asks of it. ``ratio`` is the upper bound.

    The ELBO (defaults ratio=1, min_ratio=0). MDLM bounds -log p(x) of L tokens by E_t[(1/t) Σ_hidden CE];
    integrating t out gives Zheng et al.'s time-free form L · E_k[mean CE of k hidden], k uniform on 1..L. With
    one t per batch the executor's division by the scored count Σ_b round(t·L_b) ≈ t·Σ_b L_b *is* the 1/t weight,
    so a step's loss is the ELBO per token at that t up to the rounding (k = round(t·L) is uniform on 1..L but
    for P(1) = 1.5/L, P(L) = 0.5/L) — when a step is one micro-batch on one process: with accumulation or
    several processes each micro-batch draws its own t and the pooled count weighs them by t.

    ``per_sample=True`` draws t per sample, hides ``ceil(t·L)`` (exactly uniform on 1..L) and weighs each hidden
    token ``L / k`` (`token_weights`, the time-free 1/t); the weights sum to Σ L, so the executor's reduction is
    the ELBO in nats per token however a step is split. The default (one t per batch, no weights) is unchanged.
    """

    ratio: float = 1.0
    min_ratio: float = 0.0
    per_sample: bool = False
    fixed_budget = False  # the count follows t, drawn per batch or sample: BERT style only (see mmcore.contract)

    def __post_init__(self) -> None:
        _check_ratio("model.masking.ratio", self.ratio)
        _check_ratio("model.masking.min_ratio", self.min_ratio, self.ratio)

    def num_hidden(self, num_tokens: int) -> int:
        return hidden_budget(self.ratio, num_tokens)

    def __call__(self, tokens: Tokens, generator: torch.Generator | None = None, scores: Tensor | None = None) -> Tensor:
        valid = valid_of(tokens)
        B, N = valid.shape
        if self.ratio == 0:
            return torch.zeros_like(valid)
        if not self.per_sample:
            u = uniform_noise((1 + B * N,), valid.device, generator)
            t = self.min_ratio + (self.ratio - self.min_ratio) * u[0]  # one device scalar per batch
            return hide_whole_units(u[1:].view(B, N), budget_of_valid(valid, t), valid, None)
        u = uniform_noise((B * (1 + N),), valid.device, generator)
        t = self.min_ratio + (self.ratio - self.min_ratio) * u[:B, None]  # [B, 1] one ratio per sample
        length = valid.sum(dim=1, keepdim=True)
        count = torch.minimum((t * length).ceil().long().clamp_min(1), budget_of_valid(valid, self.ratio))
        return hide_whole_units(u[B:].view(B, N), count, valid, None)

    def token_weights(self, scored: Tensor, valid: Tensor | None) -> Tensor | None:
        """[B, N] float32 weight of each scored (hidden ∩ valid) token in the loss, or None (all 1) without
        ``per_sample``: ``valid_length / hidden_count`` of its sample, the time-agnostic 1/t."""
        if not self.per_sample:
            return None
        length = scored.shape[1] if valid is None else valid.sum(dim=1, keepdim=True)
        weight = torch.as_tensor(length, device=scored.device).to(torch.float32) / scored.sum(dim=1, keepdim=True).clamp_min(1)
        return weight.expand(scored.shape) * scored


# -- target, embedder, head ------------------------------------------------------


@dataclass
class TokenIdTarget:
    """Predict each hidden token's id (cross-entropy over the vocabulary)."""

    def dim(self, tokenizer) -> int:
        return tokenizer.vocab_size

    def __call__(self, tokens: Tokens) -> Tensor:
        return tokens.values  # [B, N] int64

    def to_values(self, pred: Tensor, tokens: Tokens, index: Tensor) -> Tensor:
        """Logits [B, K, V] → most likely ids [B, K] (float, like the values reconstruct pastes into)."""
        return pred.argmax(dim=-1).to(torch.float32)


def norm_eps_of(tokenizer) -> float:
    """The epsilon of the embedder's and head's LayerNorms: the tokenizer's ``norm_eps`` option where it
    has one (text: BERT's ``layer_norm_eps``, for mm-text's `mm_text.hf_bert`), else 1e-6 as always."""
    return float(getattr(tokenizer, "norm_eps", 1e-6))


class TokenEmbedder(Embedder):
    """Id embedding plus learned absolute positions and a LayerNorm (BERT/ESM-1 style).

    Hidden tokens are shown as the mask id unless a policy already corrupted
    the ids (``meta["corrupted"]``), so BERT's kept and random tokens stay as
    the policy chose them.
    """

    def __init__(self, tokenizer, dim: int, decoder_dim: int | None) -> None:
        super().__init__()
        self.mask_id, self.max_length = tokenizer.mask_id, tokenizer.max_length
        self.bert_style = decoder_dim is None  # MAE style drops hidden tokens instead of showing [MASK]
        self.tokens = nn.Embedding(tokenizer.vocab_size, dim)
        self.positions = nn.Embedding(tokenizer.max_length, dim)
        self.norm = nn.LayerNorm(dim, eps=norm_eps_of(tokenizer))
        for table in (self.tokens, self.positions):
            nn.init.normal_(table.weight, std=0.02)
        if decoder_dim is not None:  # MAE style: the light decoder gets its own positions
            self.decoder_table = nn.Embedding(tokenizer.max_length, decoder_dim)
            nn.init.normal_(self.decoder_table.weight, std=0.02)

    def _check_length(self, n: int) -> None:
        if n > self.max_length:
            raise DataError(
                f"a batch of {n} tokens is longer than the model's limit model.tokenizer.max_length "
                f"{self.max_length}; accepted: at most {self.max_length} tokens (crop or split the input)"
            )

    def forward(self, tokens: Tokens, hidden: Tensor | None = None) -> Tensor:
        ids = tokens.values
        self._check_length(ids.shape[1])
        if hidden is not None and self.bert_style and not tokens.meta.get("corrupted", False):
            ids = ids.masked_fill(hidden, self.mask_id)
        x = self.tokens(ids) + self.positions.weight[: ids.shape[1]]
        return self.norm(x)

    def decoder_positions(self, tokens: Tokens) -> Tensor:
        self._check_length(tokens.num_tokens)
        return self.decoder_table.weight[None, : tokens.num_tokens]  # [1, N, decoder_dim]


class VocabHead(Head):
    """BERT's MLM head at hidden positions only: dense → GELU → LayerNorm → logits."""

    def __init__(self, tokenizer, target, dim: int) -> None:
        super().__init__()
        self.transform = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.LayerNorm(dim, eps=norm_eps_of(tokenizer)))
        self.proj = nn.Linear(dim, target.dim(tokenizer))
        nn.init.normal_(self.proj.weight, std=0.02)
        nn.init.zeros_(self.proj.bias)

    def tie_to(self, embedder: TokenEmbedder) -> list[str]:
        """Share the output matrix with the embedder's token table, as BERT and ESM tie their decoder
        (the bias stays the head's own); returns the names of the head's parameters now shared."""
        if self.proj.weight.shape != embedder.tokens.weight.shape:
            raise ConfigError(
                f"model.tokenizer.tie_embeddings: the head's output matrix {tuple(self.proj.weight.shape)} "
                f"and the token table {tuple(embedder.tokens.weight.shape)} differ in shape; accepted: "
                "tie_embeddings false, or a head as wide as the embeddings (style bert)"
            )
        self.proj.weight = embedder.tokens.weight
        return ["proj.weight"]

    def forward(self, states: Tensor) -> Tensor:
        return self.proj(self.transform(states))  # [B, K, V] logits

    def loss(self, pred: Tensor, target: Tensor) -> Tensor:
        """[B, K] float32 cross-entropy per hidden token (softmax in float32)."""
        B, K, V = pred.shape
        return F.cross_entropy(pred.float().reshape(B * K, V), target.reshape(B * K), reduction="none").view(B, K)


# -- mm fill -------------------------------------------------------------------


SAMPLERS = ("maskgit", "first-hitting")  # mm fill --sampler


def _configure_fill(p) -> None:
    p.add_argument("model", help="a model folder or Hub repo id (BERT style, discrete tokens)")
    p.add_argument("prompts", nargs="*", help="prompts with the tokenizer's mask token ([MASK] for text, <mask> for protein)")
    p.add_argument("--fasta", "--file", dest="file", help="read prompts from a file (FASTA records; .txt lines or .jsonl for text)")
    p.add_argument(
        "--sampler",
        choices=SAMPLERS,
        default="maskgit",
        help="maskgit: confidence-ordered steps (--steps); first-hitting: the masked-diffusion reverse process, "
        "one uniformly chosen mask filled per model call (n calls for n masks); default maskgit",
    )
    p.add_argument("--steps", type=int, default=8, help="confidence-ordered decoding steps (MaskGIT); default 8")
    p.add_argument("--temperature", type=float, default=1.0, help="sampling temperature, 0 = argmax; default 1")
    p.add_argument("--argmax", action="store_true", help="one shot: fill every position with its argmax in one pass")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampler")
    p.add_argument(
        "--given",
        action="append",
        default=[],
        metavar="MODALITY=VALUE",
        help="joint models: a modality given as a file or text (repeatable), e.g. --given image=seven.png",
    )
    p.add_argument("--predict", metavar="MODALITY", help="joint models: the modality to predict from the given ones")
    p.add_argument("--length", type=int, default=None, help="joint models: tokens of a predicted text/sequence (default 1)")
    p.add_argument("-o", "--output", help="joint models: picture of a predicted image, spectrogram, ... (PNG)")


def _run_fill(args) -> None:
    """Fill every mask token of the prompts and print each filled sample as the tokenizer renders it;
    for a joint model, predict ``--predict`` from the ``--given`` modalities."""
    from mmcore import from_pretrained

    model = from_pretrained(args.model)
    if hasattr(model, "streams"):
        if args.sampler != "maskgit":
            raise MMCoreError(f"--sampler {args.sampler} fills models of one modality; a joint model fills with --sampler maskgit")
        return _run_joint_fill(model, args)
    if args.sampler == "first-hitting" and args.argmax:
        raise MMCoreError("--argmax is MaskGIT's one-shot fill; with --sampler first-hitting give --temperature 0 for argmax ids")
    if args.given or args.predict:
        raise MMCoreError(f"--given/--predict need a model of several modalities; this one is {model.modality.name!r} alone")
    tok = model.tokenizer
    if not hasattr(tok, "parse_prompt"):
        raise MMCoreError(f"modality {model.modality.name!r} has no prompts to fill (its tokenizer has no parse_prompt)")
    if bool(args.file) == bool(args.prompts):
        raise MMCoreError("mm fill: give prompts or --fasta/--file FILE (one of them)")
    if args.file:
        named = tok.read_prompts(args.file)
        if not named:
            raise MMCoreError(f"{args.file}: no prompt found")
    else:
        named = [(None, tok.parse_prompt(text, f"prompt {i + 1}")) for i, text in enumerate(args.prompts)]
    batch = tok.collate([sample for _, sample in named])
    names = [name or f"prompt {i + 1}" for i, (name, _) in enumerate(named)]
    check_prompts(batch["ids"], batch.get("valid"), tok.mask_id, names, tok.mask_token)
    generator = torch.Generator().manual_seed(args.seed)
    if args.sampler == "first-hitting":
        ids, _ = fill_first_hitting(model, batch, temperature=args.temperature, generator=generator)
    else:
        steps, temperature = (1, 0.0) if args.argmax else (args.steps, args.temperature)
        ids, _ = fill(model, batch, steps=steps, temperature=temperature, generator=generator)
    valid = batch.get("valid")
    for i, (name, _) in enumerate(named):
        row = ids[i] if valid is None else ids[i][valid[i]]
        print(tok.render(row.tolist(), name))


def _run_joint_fill(model, args) -> None:
    from mmcore.joint_fill import predict_stream, read_given

    if not args.predict or args.prompts or args.file:
        raise MMCoreError(
            "mm fill with a model of several modalities: give --given MODALITY=VALUE ... --predict MODALITY "
            f"(its modalities: {', '.join(model.streams)})"
        )
    steps, temperature = (1, 0.0) if args.argmax else (args.steps, args.temperature)
    values, tokens = predict_stream(
        model, read_given(model, args.given), args.predict, args.length, steps, temperature, torch.Generator().manual_seed(args.seed)
    )
    stream = model.streams[args.predict]
    render = getattr(stream.tokenizer, "render", None)
    if "mask_id" in tokens.meta and render is not None:
        print(render(values[0].long().tolist(), args.predict))
        return
    picture = stream.modality.picture
    if not args.output or picture is None:
        raise MMCoreError(
            f"--predict {args.predict}: give -o OUT.png for the picture of the prediction"
            if picture is not None
            else f"modality {args.predict!r} has no picture to write"
        )
    detok = stream.tokenizer.detokenize
    blank = detok(torch.full_like(values, float(values.mean())), tokens)
    picture(blank, blank, detok(values, tokens)).save(args.output)  # nothing of it was given: blank | blank | predicted
    print(args.output)


FILL_COMMAND = Command(
    name="fill",
    help="fill the masked positions of text or sequences, or predict one modality of a joint model from others",
    usage='mm fill MODEL "The [MASK] sat on the [MASK]." | mm fill MODEL --fasta in.fa '
    "[--sampler maskgit|first-hitting] [--steps N] [--temperature T] [--argmax] [--seed N] | "
    "mm fill JOINT_MODEL --given image=seven.png --predict text | --given text=seven --predict image -o out.png",
    configure=_configure_fill,
    run=_run_fill,
    examples=(
        'mm fill runs/text-mlm/model "The [MASK] statement binds a [MASK] to a value."',
        "mm fill runs/protein-mlm/model --fasta masked.fa --steps 8",
        'mm fill runs/text-mlm/model "The [MASK] [MASK] [MASK] a name." --sampler first-hitting',
        "mm fill runs/multimodal-digits/model --given image=seven.png --predict text",
    ),
)
