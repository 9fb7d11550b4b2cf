"""JointModel: several modalities, one backbone (4M-style any-to-any masked modeling).

Each *stream* is one modality's parts — tokenizer, masking policy, target,
embedder, head — from its own plugin, named in the recipe
(``model.modalities: {image: {...}, text: {...}}``; a stream's ``modality``
defaults to its name, so two streams may share a plugin). Tokens of every
stream are embedded by their own embedder (which adds positions), get a
learned modality embedding, and are concatenated along N for one shared
encoder (and decoder, MAE style); each stream's head scores its own slots.

Masking is over the union with **fixed per-stream budgets**: stream m hides
``K_m = policy.num_hidden(N_m)`` slots (all N_m when fully hidden, 0 when
fully visible), so every shape depends only on the per-stream token counts.
Each stream is routed by the rule of `mmcore.contract` on its own and the
routes are concatenated: the encoder holds every stream's visible slots, the
decoder's last ``Σ K_m`` rows are stream 1's predicted slots, then stream
2's, ... — a fixed range per stream, so each head takes a static slice.

The mixture of 4M (some batches hide one whole modality) is drawn **per
batch**: with probability ``hide_one_prob`` one stream (of those allowed to
be targets) is fully hidden and each other one is either fully visible or,
with probability ``1 - input_keep_prob``, left out (hidden and unscored), so
the model learns to predict a modality from any subset of the others. The
choice is made on the host from the mask generator's seed (no device sync,
and a resumed run draws the same), giving a few distinct shapes, each static.

Batches are namespaced by stream (``batch[name]`` is what that stream's
tokenizer collated), so collate keys never collide. A sample may lack a
stream (``None``): its tokens are void for that sample — nothing seen,
nothing scored, i.e. that modality is fully hidden and unscored for it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor, nn

from mmcore.backbone import Transformer, TransformerConfig, initialise
from mmcore.contract import Modality, Tokens
from mmcore.errors import ConfigError, PluginError
from mmcore.model import (
    STYLES,
    MaskedOutput,
    ModelFolder,
    build_part,
    check_hidden,
    loss_part_names,
    mae_order,
    mae_pass,
    own_frozen_target,
    score_slots,
    scored_mask,
    scorer_of,
    structure_of,
    tie_head,
)
from mmcore.plugins import get_registry, install_hint

ROLES = ("both", "input", "target")  # masked by its policy / always visible / always hidden
PRESENT = "present"  # batch key: [B] bool per stream, False where a sample lacks that stream


@dataclass
class Stream:
    """One modality's parts inside a joint model."""

    name: str
    modality: Modality
    tokenizer: Any
    policy: Any
    target: Any
    role: str
    hide_weight: float = 1.0


class JointCollate:
    """Samples ``{stream: item or None}`` → ``{stream: that tokenizer's batch, "present": {stream: [bool] * B}}``.

    Namespaced, so two plugins' collate keys never collide; picklable for loader workers."""

    def __init__(self, tokenizers: dict[str, Any]) -> None:
        self.tokenizers = tokenizers

    def __call__(self, samples: list[dict[str, Any]]) -> dict[str, Any]:
        batch: dict[str, Any] = {PRESENT: {}}
        for name, tokenizer in self.tokenizers.items():
            present = [s.get(name) is not None for s in samples]
            if any(present):
                batch[name] = tokenizer.collate([s[name] for s in samples if s.get(name) is not None])
            batch[PRESENT][name] = present  # a host list: spreading rows needs no device sync
        return batch


@dataclass
class JointOutput:
    """Per-stream outputs of one micro-batch; the executor reduces ``loss_terms`` like a single model's."""

    outputs: dict[str, MaskedOutput]
    hidden_whole: str | None  # the stream this batch hid entirely (the mixture), if any
    left_out: frozenset[str] = frozenset()  # streams this batch hid entirely and did not score

    def loss_terms(self, weights: dict[str, float] | None = None) -> tuple[Tensor, Tensor]:
        terms = [out.loss_terms(weights) for out in self.outputs.values()]
        return sum(t for t, _ in terms), sum(c for _, c in terms)

    @property
    def loss(self) -> Tensor:
        total, count = self.loss_terms()
        return total / count.clamp_min(1.0)


class JointModel(ModelFolder):
    """Built from a plain-dict ``config``: ``modalities`` {stream: {modality, role, tokenizer, masking,
    target}}, ``style``, ``hide_one_prob``, ``input_keep_prob``, ``encoder``, ``decoder``."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        check_joint_plugins(config)
        self.config = config
        self.style = config.get("style") or "mae"
        if self.style not in STYLES:
            raise ConfigError(f"model.style {self.style!r} is unknown; accepted: {', '.join(STYLES)}")
        self.hide_one_prob = float(config.get("hide_one_prob", 0.0))
        self.input_keep_prob = float(config.get("input_keep_prob", 1.0))
        for key in ("hide_one_prob", "input_keep_prob"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise ConfigError(f"model.{key} {getattr(self, key)!r} is out of range; accepted: 0 <= p <= 1")
        self.streams = build_streams(config)
        enc, dec = TransformerConfig(**config["encoder"]), TransformerConfig(**config["decoder"])
        mae = self.style == "mae"
        self.embedders = nn.ModuleDict(
            {s.name: s.modality.embedder(s.tokenizer, enc.dim, dec.dim if mae else None) for s in self.streams.values()}
        )
        width = dec.dim if mae else enc.dim
        self.heads = nn.ModuleDict({s.name: s.modality.head(s.tokenizer, s.target, width) for s in self.streams.values()})
        for s in self.streams.values():  # model.modalities.<stream>.tokenizer.tie_embeddings
            tie_head(self, s.tokenizer, self.embedders[s.name], self.heads[s.name], f"heads.{s.name}.", self.style)
        self.targets = nn.ModuleDict({s.name: s.target for s in self.streams.values() if isinstance(s.target, nn.Module)})
        for name, target in self.targets.items():
            own_frozen_target(self, target, f"targets.{name}.")
        self.row = {name: i for i, name in enumerate(self.streams)}  # a stream's modality-embedding row, fixed
        self.modality_embed = nn.Parameter(torch.zeros(len(self.streams), enc.dim))  # one row per stream
        nn.init.normal_(self.modality_embed, std=0.02)
        self.encoder = Transformer(enc)
        if mae:
            self.decoder_embed = nn.Linear(enc.dim, dec.dim)
            self.mask_token = nn.Parameter(torch.zeros(1, 1, dec.dim))
            self.decoder_modality_embed = nn.Parameter(torch.zeros(len(self.streams), dec.dim))
            nn.init.normal_(self.mask_token, std=0.02)
            nn.init.normal_(self.decoder_modality_embed, std=0.02)
            self.decoder = Transformer(dec)
        initialise([self.encoder, self.heads] + ([self.decoder_embed, self.decoder] if mae else []), config.get("init", "mae"))

    def loss_parts(self) -> list[str]:
        return [part for s in self.streams.values() for part in loss_part_names(self._scorer(s), s.name)]

    def _scorer(self, stream: Stream) -> Any:
        return scorer_of(stream.target, self.heads[stream.name])

    # -- data ------------------------------------------------------------------
    def collate(self, samples: list[dict[str, Any]]) -> dict[str, Any]:
        return JointCollate({name: s.tokenizer for name, s in self.streams.items()})(samples)

    def tokenize(self, batch: dict[str, Any]) -> dict[str, Tokens]:
        """{stream: Tokens [B, N_m, ...]}; rows of samples that lack a stream are void. A stream absent
        from the whole batch is left out."""
        present = batch.get(PRESENT, {})
        tokens = {}
        for name, stream in self.streams.items():
            if name not in batch:
                continue
            t = stream.tokenizer.tokenize(batch[name])
            rows = present.get(name)
            if rows is not None and t.batch_size != len(rows):
                t = spread_rows(t, rows)
            tokens[name] = t
        if not tokens:
            raise ConfigError(f"a batch holds none of the model's modalities {list(self.streams)}")
        return tokens

    # -- masks -------------------------------------------------------------------
    def scenario(self, generator: torch.Generator | None) -> tuple[str | None, frozenset[str]]:
        """(the stream this batch hides entirely, the streams it leaves out), drawn on the host from the
        generator's seed: no device sync, and the same on resume.

        With probability ``hide_one_prob`` one stream is hidden entirely (drawn with odds ``hide_weight``,
        so a recipe can spend more of its budget on the direction it cares about); each other stream is then
        kept as an input with probability ``input_keep_prob`` (at least one is kept) and otherwise
        left out — hidden entirely and unscored — so the model also learns to predict from subsets
        of the modalities, e.g. text from the image alone when audio would have made it easy.
        """
        if self.hide_one_prob == 0.0 or generator is None:
            return None, frozenset()
        rng = random.Random(generator.initial_seed())
        if rng.random() >= self.hide_one_prob:
            return None, frozenset()
        candidates = [n for n, s in self.streams.items() if s.role != "input" and s.hide_weight > 0]
        if not candidates:
            return None, frozenset()
        weights = [self.streams[n].hide_weight for n in candidates]
        whole = rng.choice(candidates) if len(set(weights)) == 1 else rng.choices(candidates, weights)[0]
        others = [n for n in self.streams if n != whole]
        kept = [n for n in others if rng.random() < self.input_keep_prob] or ([rng.choice(others)] if others else [])
        return whole, frozenset(n for n in others if n not in kept)

    def budgets(self, tokens: dict[str, Tokens], whole: str | None, left_out: frozenset[str] = frozenset()) -> dict[str, int]:
        """Hidden slots per stream: the policy's budget, N_m when fully hidden, 0 when fully visible."""
        out = {}
        for name, t in tokens.items():
            role = self.streams[name].role
            if whole is not None:
                out[name] = t.num_tokens if name == whole or name in left_out else 0
            elif role == "input":
                out[name] = 0
            elif role == "target":
                out[name] = t.num_tokens
            else:
                out[name] = self.streams[name].policy.num_hidden(t.num_tokens)
                if not 0 <= out[name] <= t.num_tokens:
                    raise ConfigError(
                        f"modality {name!r}: its masking policy hides {out[name]} of {t.num_tokens} "
                        f"tokens per sample; accepted: 0 to {t.num_tokens} (check model.modalities."
                        f"{name}.masking)"
                    )
        return out

    def draw_masks(self, tokens: dict[str, Tokens], budgets: dict[str, int], generator: torch.Generator | None) -> dict[str, Tensor]:
        masks = {}
        for name, t in tokens.items():
            K, N = budgets[name], t.num_tokens
            if K == 0:
                masks[name] = torch.zeros(t.batch_size, N, dtype=torch.bool, device=t.values.device)
            elif K == N:
                masks[name] = torch.ones(t.batch_size, N, dtype=torch.bool, device=t.values.device)
            else:
                masks[name] = self.streams[name].policy(t, generator=generator)
        return masks

    # -- tokenize → mask → predict -------------------------------------------------
    def forward(
        self,
        batch: dict[str, Any],
        generator: torch.Generator | None = None,
        hidden: dict[str, Tensor] | None = None,
        hide_whole: str | None = None,
    ) -> JointOutput:
        """``hidden`` {stream: [B, N_m] bool} fixes the masks (checked per stream against its budget);
        ``hide_whole`` names a stream to predict from the others alone (e.g. text from image).

        Tokenizing and every random draw run eagerly here; `step` is the pure tensor function
        ``train.compile`` compiles (`compile_step`), as in `mmcore.model.MaskedModel.forward`."""
        tokens = self.tokenize(batch)
        if hide_whole is not None and hide_whole not in self.streams:
            raise ConfigError(f"hide_whole {hide_whole!r} is not a modality of this model; accepted: {', '.join(self.streams)}")
        if hide_whole is not None or hidden is not None:
            whole, left_out = hide_whole, frozenset()
        else:
            whole, left_out = self.scenario(generator)
        budgets = self.budgets(tokens, whole, left_out)
        if hidden is None:
            masks = self.draw_masks(tokens, budgets, generator)
        else:
            masks = self.check_masks(hidden, tokens, budgets)
        seen = self.corrupted(tokens, masks, budgets, generator)
        return (self.compiled_step or self.step)(tokens, masks, budgets, seen, whole, left_out)

    def step(
        self,
        tokens: dict[str, Tokens],
        masks: dict[str, Tensor],
        budgets: dict[str, int],
        seen: dict[str, Tokens],
        whole: str | None,
        left_out: frozenset[str],
    ) -> JointOutput:
        """Predict and score every stream with every random choice made (no generator): one graph."""
        preds = self.predict(tokens, masks, budgets, seen=seen)
        outputs = {}
        for name, t in tokens.items():
            scored = masks[name] if name not in left_out else torch.zeros_like(masks[name])  # left out: not scored
            stream = self.streams[name]
            outputs[name] = score_slots(stream.target, self._scorer(stream), name, t, scored, *preds[name], stream.policy)
        return JointOutput(outputs, whole, left_out)

    def corrupted(
        self, tokens: dict[str, Tokens], masks: dict[str, Tensor], budgets: dict[str, int], generator: torch.Generator | None
    ) -> dict[str, Tokens]:
        """{stream: the tokens the BERT-style encoder sees}: the policy's ``corrupt`` where a stream is
        masked by its policy (not wholly hidden or shown); MAE style sees them unchanged."""
        seen = dict(tokens)
        for name, t in tokens.items():
            corrupt = getattr(self.streams[name].policy, "corrupt", None)
            if self.style == "bert" and corrupt is not None and 0 < budgets[name] < t.num_tokens:
                seen[name] = corrupt(t, scored_mask(masks[name], t.valid), generator)
        return seen

    def check_masks(self, hidden: dict[str, Tensor], tokens: dict[str, Tokens], budgets: dict[str, int]) -> dict[str, Tensor]:
        unknown = sorted(set(hidden) - set(tokens))
        if unknown:
            raise ConfigError(f"hidden: unknown modality {unknown}; this batch holds {', '.join(tokens)}")
        masks = {}
        for name, t in tokens.items():
            mask = hidden.get(name)
            if mask is None:
                mask = self.draw_masks({name: t}, budgets, None)[name]
            try:
                check_hidden(mask, t, budgets[name], self.style)
            except ConfigError as exc:
                raise ConfigError(f"modality {name!r}: {exc}") from None
            masks[name] = mask
        return masks

    def embed(self, tokens: dict[str, Tokens], masks: dict[str, Tensor], seen: dict[str, Tokens] | None = None) -> Tensor:
        """[B, N, D]: every stream's embedding plus its modality embedding, concatenated along N."""
        parts = []
        for name in tokens:
            x = self.embedders[name]((seen or tokens)[name], masks[name])
            parts.append(x + self.modality_embed[self.row[name]].to(x.dtype))
        return torch.cat(parts, dim=1)

    def predict(
        self,
        tokens: dict[str, Tokens],
        masks: dict[str, Tensor],
        budgets: dict[str, int],
        generator: torch.Generator | None = None,
        seen: dict[str, Tokens] | None = None,
    ) -> dict[str, tuple[Tensor, Tensor]]:
        """{stream: (head outputs [B, K_m, ...], local token index [B, K_m])}. BERT style encodes
        ``seen`` (default: the policies' corruption drawn from ``generator``)."""
        masks = {n: scored_mask(m, tokens[n].valid) for n, m in masks.items()}
        if self.style == "mae":
            return self.forward_mae(tokens, masks, budgets)
        if seen is None:
            seen = self.corrupted(tokens, masks, budgets, generator)
        return self.forward_bert(tokens, masks, budgets, seen)

    def forward_mae(self, tokens: dict[str, Tokens], masks: dict[str, Tensor], budgets: dict[str, int]) -> dict[str, tuple[Tensor, Tensor]]:
        x = self.embed(tokens, masks)
        B = x.shape[0]
        offsets = stream_offsets(tokens)
        encoder_slots, predicted_slots = [], []
        for name, t in tokens.items():  # each stream routed on its own, the routes concatenated
            order = mae_order(masks[name], t.valid) + offsets[name]
            encoder_slots.append(order[:, : t.num_tokens - budgets[name]])
            predicted_slots.append(order[:, t.num_tokens - budgets[name] :])
        order = torch.cat(encoder_slots + predicted_slots, dim=1)  # [B, N]
        pos = torch.cat(
            [
                self.embedders[n].decoder_positions(t).expand(B, -1, -1) + self.decoder_modality_embed[self.row[n]]
                for n, t in tokens.items()
            ],
            dim=1,
        )
        y = mae_pass(
            self, x, order, sum(budgets.values()), joint_valid(tokens), joint_structure(tokens, self.embedders, masks), pos
        )  # [B, K, Dd]: stream 1's slots, 2's, ...
        out, start = {}, 0
        for name, slots in zip(tokens, predicted_slots):
            k = slots.shape[1]
            out[name] = (self.heads[name](y[:, start : start + k]), slots - offsets[name])
            start += k
        return out

    def forward_bert(
        self, tokens: dict[str, Tokens], masks: dict[str, Tensor], budgets: dict[str, int], seen: dict[str, Tokens]
    ) -> dict[str, tuple[Tensor, Tensor]]:
        x = self.encoder(self.embed(tokens, masks, seen), joint_valid(tokens), structure=joint_structure(tokens, self.embedders, masks))
        offsets = stream_offsets(tokens)
        out = {}
        for name in tokens:
            index = masks[name].to(torch.int8).argsort(dim=1, descending=True, stable=True)[:, : budgets[name]]
            states = x.gather(1, (index + offsets[name])[..., None].expand(-1, -1, x.shape[-1]))
            out[name] = (self.heads[name](states), index)
        return out

    # -- using what was learned --------------------------------------------------------
    @torch.no_grad()
    def predict_whole(self, batch: dict[str, Any], stream: str) -> tuple[Tensor, Tokens]:
        """Hide ``stream`` entirely and predict it from the other streams of ``batch``.

        ``batch[stream]`` only gives the shape (its values are never seen: a placeholder of the
        right size will do). Returns the predicted token values [B, N, ...] (ids for discrete
        targets, values for continuous ones, via the target's ``to_values``) and the stream's Tokens.
        """
        out = self(batch, hide_whole=stream).outputs[stream]
        values = self.streams[stream].target.to_values(out.pred.float(), out.tokens, out.index)  # [B, N, ...]
        at = out.index.view(*out.index.shape, *([1] * (values.dim() - 2))).expand_as(values)
        full = torch.zeros(out.tokens.values.shape, dtype=values.dtype, device=values.device).scatter(1, at, values)
        return full, out.tokens

    @torch.no_grad()
    def features(self, batch: dict[str, Any]) -> Tensor:
        """[B, D] mean of the encoder's states over every valid token of every stream given."""
        tokens = self.tokenize(batch)
        masks = {n: torch.zeros(t.batch_size, t.num_tokens, dtype=torch.bool, device=t.values.device) for n, t in tokens.items()}
        valid = joint_valid(tokens)
        states = self.encoder(self.embed(tokens, masks), valid, structure=joint_structure(tokens, self.embedders, masks))
        if valid is None:
            return states.mean(dim=1)
        w = valid[..., None].to(states.dtype)
        return (states * w).sum(1) / w.sum(1).clamp_min(1.0)


# -- building --------------------------------------------------------------------------


def build_streams(config: dict[str, Any]) -> dict[str, Stream]:
    registry = get_registry()
    entries = config.get("modalities") or {}
    if not entries:
        raise ConfigError("model.modalities is empty; accepted: {name: {modality, tokenizer, masking, target}, ...}")
    streams = {}
    for name, entry in entries.items():
        modality = registry.modality(entry.get("modality") or name)
        role = entry.get("role") or "both"
        if role not in ROLES:
            raise ConfigError(f"model.modalities.{name}.role {role!r} is unknown; accepted: {', '.join(ROLES)}")
        tokenizer = modality.tokenizer(**(entry.get("tokenizer") or {}))
        policy = build_part(registry.policy, modality.name, entry.get("masking") or {"name": modality.default_policy})
        target = build_part(registry.target, modality.name, entry.get("target") or {"name": modality.default_target})
        if hasattr(target, "bind"):
            target.bind(tokenizer)
        hide_weight = float(entry.get("hide_weight", 1.0))
        if not hide_weight >= 0:
            raise ConfigError(f"model.modalities.{name}.hide_weight {hide_weight!r} is out of range; accepted: a number >= 0")
        streams[name] = Stream(name, modality, tokenizer, policy, target, role, hide_weight)
    if all(s.role == "target" for s in streams.values()):
        raise ConfigError(
            "model.modalities: every modality has role 'target'; accepted: at least one that the encoder may see (role 'both' or 'input')"
        )
    return streams


def check_joint_plugins(config: dict[str, Any]) -> None:
    """Every stream's modality must be installed; one error names every missing plugin with its pip line."""
    registry = get_registry()
    from mmcore.model import check_plugins

    check_plugins({**config, "modality": None}, check_modality=False)
    missing = []
    for name, entry in (config.get("modalities") or {}).items():
        modality = entry.get("modality") or name
        if modality not in registry.items["modalities"]:
            missing.append((name, modality))
    if missing:
        lines = "; ".join(f"modality {m!r} (stream {n!r})" + (f": {hint}" if (hint := install_hint(f"mm-{m}")) else "") for n, m in missing)
        raise PluginError(
            f"this model needs plugins that are not installed: {lines}; "
            f"installed modalities: {', '.join(registry.names('modalities')) or 'none'}"
        )


# -- the union of streams --------------------------------------------------------------


def stream_offsets(tokens: dict[str, Tokens]) -> dict[str, int]:
    offsets, start = {}, 0
    for name, t in tokens.items():
        offsets[name] = start
        start += t.num_tokens
    return offsets


def joint_valid(tokens: dict[str, Tokens]) -> Tensor | None:
    """[B, N] valid mask of the concatenation, or None when no stream has a void token."""
    if all(t.valid is None for t in tokens.values()):
        return None
    return torch.cat(
        [
            t.valid if t.valid is not None else torch.ones(t.batch_size, t.num_tokens, dtype=torch.bool, device=t.values.device)
            for t in tokens.values()
        ],
        dim=1,
    )


def joint_structure(tokens: dict[str, Tokens], embedders: nn.ModuleDict, masks: dict[str, Tensor]) -> Tensor | None:
    """The streams' own attention structures as diagonal blocks; across streams every token may attend
    every other. None when no stream brings one."""
    blocks = {}
    for name, t in tokens.items():
        s = structure_of(embedders[name], t, masks[name])
        if s is not None:
            blocks[name] = s if s.dim() == 4 else s[:, None]
    if not blocks:
        return None
    first = next(iter(tokens.values()))
    B, N = first.batch_size, sum(t.num_tokens for t in tokens.values())
    heads = max(b.shape[1] for b in blocks.values())
    floating = any(b.is_floating_point() for b in blocks.values())
    device = first.values.device
    full = torch.zeros(B, heads, N, N, device=device) if floating else torch.ones(B, heads, N, N, dtype=torch.bool, device=device)
    start = 0
    for name, t in tokens.items():
        n = t.num_tokens
        if name in blocks:
            b = blocks[name]
            if floating and b.dtype == torch.bool:
                b = torch.zeros(b.shape, device=device).masked_fill(~b, float("-inf"))
            full[:, :, start : start + n, start : start + n] = b
        start += n
    return full


def spread_rows(tokens: Tokens, present: list[bool]) -> Tokens:
    """Tokens of the samples that hold a stream → [B, ...] with void rows for the samples that lack it."""
    rows = torch.tensor([i for i, p in enumerate(present) if p], device=tokens.values.device)
    B = len(present)

    def spread(x: Tensor, fill: Any = 0) -> Tensor:
        out = torch.full((B, *x.shape[1:]), fill, dtype=x.dtype, device=x.device)
        return out.index_copy(0, rows, x)

    valid = tokens.valid if tokens.valid is not None else torch.ones(tokens.values.shape[:2], dtype=torch.bool, device=tokens.values.device)
    positions = tokens.positions if tokens.positions.shape[0] == 1 else spread(tokens.positions)
    meta = {k: spread(v) if torch.is_tensor(v) and v.dim() and v.shape[0] == tokens.batch_size else v for k, v in tokens.meta.items()}
    structure = None if tokens.structure is None else spread(tokens.structure, True if tokens.structure.dtype == torch.bool else 0.0)
    return replace(tokens, values=spread(tokens.values), positions=positions, valid=spread(valid, False), meta=meta, structure=structure)
