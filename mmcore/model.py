"""MaskedModel: one modality's parts around the shared backbone.

``forward`` runs tokenize → mask → predict in the paper's order and returns
the loss over hidden ∩ valid tokens. Two styles:

* ``mae``:  the encoder sees visible tokens only; a light decoder gets a mask
  token for every hidden one (3-4x cheaper at high mask ratios).
* ``bert``: the embedder represents hidden tokens at the input, one encoder,
  the head runs at hidden positions only.

The model is a folder (``config.json`` + ``model.safetensors`` + card); it is
rebuilt from ``config`` alone, through the plugin registry.
"""

from __future__ import annotations

import importlib.metadata
import os
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Callable
from typing import Any

import torch
from huggingface_hub import PyTorchModelHubMixin
from packaging.version import Version
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor, nn

from mmcore.backbone import Transformer, TransformerConfig, initialise, with_prefix
from mmcore.contract import Tokens
from mmcore.errors import ConfigError, DataError, MMCoreError, PluginError
from mmcore.plugins import get_registry, install_hint

STYLES = ("mae", "bert")


@dataclass
class MaskedOutput:
    """One micro-batch's predictions and per-token losses.

    ``loss`` is this micro-batch's own mean, for evaluation and quick use; a
    training step reduces ``loss_terms`` instead, over every micro-batch and
    process at once (`mmcore.executor.LossReducer`).
    """

    loss: Tensor  # [] mean loss over hidden ∩ valid tokens of this micro-batch
    token_loss: Tensor  # [B, K] per hidden slot (the sum of the parts' losses)
    weight: Tensor  # [B, K] 1.0 where the slot is hidden ∩ valid (scored), or the policy's token weight; else 0.0
    pred: Tensor  # [B, K, D] predictions in target space
    index: Tensor  # [B, K] token index of each hidden slot
    hidden: Tensor  # [B, N] bool, True = hidden
    tokens: Tokens
    parts: dict[str, Tensor] = field(default_factory=dict)  # loss part name → [B, K] per-slot loss

    def loss_terms(self, weights: dict[str, float] | None = None) -> tuple[Tensor, Tensor]:
        """(Σ weight_part × loss over scored slots, number of scored slots): the executor sums
        both over the micro-batches of a step and over processes, then divides once."""
        weights = weights or {}
        total = sum(weights.get(name, 1.0) * (loss * self.weight).sum() for name, loss in self.parts.items())
        return total, self.weight.sum()


class ModelFolder(nn.Module, PyTorchModelHubMixin, library_name="mmcore", tags=["mmcore", "masked-modeling"]):
    """What every mmcore model is as a folder: ``config.json`` + ``model.safetensors`` + card,
    shared through the Hub. ``ModelFolder.from_pretrained`` builds the class the config names
    (`MaskedModel` for one modality, `mmcore.joint.JointModel` for several)."""

    def __init__(self, config: dict[str, Any]) -> None:  # the mixin saves ``config`` as config.json
        super().__init__()
        self.frozen_targets: list[nn.Module] = []  # see own_frozen_target; a plain list, not submodules twice
        self.compiled_step = None  # `step` compiled by `compile_step`; forward uses it when set

    def compile_step(self, **options: Any) -> None:
        """Compile ``step`` (``train.compile``) and not ``forward``: forward tokenizes and draws every
        random choice eagerly first, so the compiled part holds no generator and is one graph."""
        self.compiled_step = torch.compile(self.step, **options)

    def train(self, mode: bool = True) -> ModelFolder:
        super().train(mode)
        for target in self.frozen_targets:
            target.eval()  # a frozen teacher never trains (dropout, norm statistics)
        return self

    # -- the model folder ----------------------------------------------------
    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *, revision: str | None = None, **kwargs):
        """A folder, or a Hub repo id; Hub failures are one-line `HubError`s naming repo and revision."""
        from mmcore.hub import check_repo_id, pull

        from mmcore.config import read_model_config

        name = os.path.expanduser(str(pretrained_model_name_or_path))
        if os.path.isdir(name):
            read_model_config(os.path.join(name, "config.json"))  # one line where the mixin would raise bare
            return super().from_pretrained(name, revision=revision, **kwargs)
        if os.path.exists(name) or name.startswith((".", "/")) or name.count("/") > 1:
            raise DataError(f"no model folder at {name}: expected a folder with config.json and model.safetensors")
        check_repo_id(name)
        folder = pull(
            name,
            revision=revision,
            token=kwargs.get("token"),
            cache_dir=kwargs.get("cache_dir"),
            force_download=kwargs.get("force_download", False),
            local_files_only=kwargs.get("local_files_only", False),
        )  # checked paths only: mmcore.hub
        read_model_config(os.path.join(folder, "config.json"))
        return super().from_pretrained(str(folder), revision=revision, **kwargs)

    def push_to_hub(self, repo_id: str, *, model_card_kwargs: dict | None = None, **kwargs):
        """As the mixin's; the card's usage lines name ``repo_id``."""
        from mmcore.hub import check_repo_id, hub_errors

        with hub_errors(check_repo_id(repo_id), kwargs.get("branch"), "push"):
            return super().push_to_hub(repo_id, model_card_kwargs={"repo": repo_id, **(model_card_kwargs or {})}, **kwargs)

    def generate_model_card(self, *args, info: dict | None = None, repo: str = "path/to/model", **kwargs):
        """The mmcore card (`mmcore.card`), not the mixin's generic one."""
        from huggingface_hub import ModelCard

        from mmcore.card import render_card

        return ModelCard(render_card(self.config, info or {}, repo))

    @classmethod
    def _from_pretrained(
        cls,
        *,
        model_id: str,
        revision=None,
        cache_dir=None,
        force_download=False,
        local_files_only=False,
        token=None,
        map_location: str = "cpu",
        strict: bool = True,
        **model_kwargs,
    ):
        """Weights from safetensors only (never pickle), each tensor's dtype and shape checked against
        the model's before anything is read (`mmcore.hub.check_tensors`), then loaded strictly."""
        from mmcore.hub import WEIGHTS, check_tensors, pull

        from mmcore.config import check_model_config

        source = os.path.join(model_id, "config.json")  # schema and bounds first: no tensor exists yet
        model_kwargs["config"] = check_model_config(model_kwargs.get("config"), source)
        try:
            model = model_class(model_kwargs["config"], cls)(**model_kwargs)
        except MMCoreError:
            raise
        except (RuntimeError, MemoryError, ValueError, TypeError, KeyError, IndexError) as exc:  # a plugin part's
            raise DataError(
                f"{source}: the model it describes cannot be built: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
            ) from exc
        if os.path.isdir(model_id):
            path = os.path.join(model_id, WEIGHTS)
        else:
            path = (
                pull(
                    model_id,
                    revision=revision,
                    cache_dir=cache_dir,
                    force_download=force_download,
                    token=token,
                    local_files_only=local_files_only,
                )
                / WEIGHTS
            )
        check_tensors(Path(path), model.state_dict(), strict)
        try:
            state = load_file(path, device=str(map_location))
        except (SafetensorError, OSError) as exc:
            raise DataError(f"cannot read weights {path}: {exc}; expected an intact safetensors file") from exc
        missing, unexpected = model.load_state_dict(state, strict=False)
        if strict and (missing or unexpected):
            raise DataError(f"weights {path} do not match config: missing {missing[:5]}, unexpected {unexpected[:5]}")
        return model.eval()


def model_class(config: dict[str, Any], requested: type) -> type:
    """The class a ``config.json`` describes; a subclass asked for by name is kept."""
    if requested is not ModelFolder:
        return requested
    if "modalities" in config:
        from mmcore.joint import JointModel

        return JointModel
    return MaskedModel


class MaskedModel(ModelFolder):
    """Built from a plain-dict ``config``: modality, style, tokenizer, masking,
    target, encoder and decoder options (see `mmcore.config.ModelConfig`)."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        check_plugins(config)
        registry = get_registry()
        self.config = config
        self.modality = registry.modality(config["modality"])
        self.style = config.get("style") or self.modality.style
        if self.style not in STYLES:
            raise PluginError(f"unknown style {self.style!r}; accepted: {', '.join(STYLES)}")
        self.tokenizer = self.modality.tokenizer(**config.get("tokenizer", {}))
        self.policy = build_part(registry.policy, config["modality"], config["masking"])
        check_routable(self.policy, config["masking"]["name"], self.style)
        self.target = build_part(registry.target, config["modality"], config["target"])
        if hasattr(self.target, "bind"):
            self.target.bind(self.tokenizer)
        if isinstance(self.target, nn.Module):
            own_frozen_target(self, self.target)
        enc = TransformerConfig(**config["encoder"])
        dec = TransformerConfig(**config["decoder"])
        self.embedder = self.modality.embedder(self.tokenizer, enc.dim, dec.dim if self.style == "mae" else None)
        self.encoder = Transformer(enc)
        if self.style == "mae":
            self.decoder_embed = nn.Linear(enc.dim, dec.dim)
            self.mask_token = nn.Parameter(torch.zeros(1, 1, dec.dim))
            nn.init.normal_(self.mask_token, std=0.02)
            self.decoder = Transformer(dec)
            self.head = self.modality.head(self.tokenizer, self.target, dec.dim)
        else:
            self.head = self.modality.head(self.tokenizer, self.target, enc.dim)
        tie_head(self, self.tokenizer, self.embedder, self.head, "head.", self.style)
        self.decoder_reads_class_token = bool(config.get("decoder_reads_class_token", False))
        if self.decoder_reads_class_token:  # ViTMAE's decoder: created only when asked, existing keys unchanged
            if self.style != "mae" or not enc.class_token:
                raise ConfigError(
                    "model.decoder_reads_class_token needs the MAE style and model.encoder.class_token: "
                    f"got style {self.style!r}, encoder.class_token {enc.class_token}; accepted: both, "
                    "or decoder_reads_class_token false"
                )
            self.register_buffer("decoder_class_pos", torch.zeros(1, 1, dec.dim))  # the class row's decoder position
        decoding = [self.decoder_embed, self.decoder] if self.style == "mae" else []
        initialise([self.encoder, self.head, *decoding], config.get("init", "mae"))

    def loss_parts(self) -> list[str]:
        """Names of the loss parts (``train.loss_weights`` keys): the modality, or ``modality/part``
        for each part of a loss that returns a dict (declared by its ``loss_parts`` attribute)."""
        return loss_part_names(self._scorer(), self.modality.name)

    @property
    def reconstructs(self) -> bool:
        """Whether predictions map back to token values (the target has ``to_values``)."""
        return callable(getattr(self.target, "to_values", None))

    def _scorer(self):
        return scorer_of(self.target, self.head)

    # -- tokenize → mask → predict ---------------------------------------
    def forward(
        self,
        batch: dict[str, Tensor],
        generator: torch.Generator | None = None,
        hidden: Tensor | None = None,
    ) -> MaskedOutput:
        """``hidden`` [B, N] bool may be passed to fix the mask (it must keep the routing rule
        of `mmcore.contract`, else a ConfigError); else the policy draws it.

        Tokenizing and every random draw run eagerly here (`draw`); `step` is then a pure
        tensor function, the part ``train.compile`` compiles (`compile_step`)."""
        tokens = self.tokenizer.tokenize(batch)
        hidden, seen = self.draw(tokens, generator, hidden)
        return (self.compiled_step or self.step)(tokens, hidden, seen)

    def draw(self, tokens: Tokens, generator: torch.Generator | None = None, hidden: Tensor | None = None) -> tuple[Tensor, Tokens]:
        """(hidden [B, N], the tokens the encoder sees): the policy's mask, or ``hidden`` checked, and in
        BERT style the policy's corruption (80/10/10), all drawn from ``generator``."""
        if hidden is None:
            hidden = self.policy(tokens, generator=generator)
        else:
            check_hidden(hidden, tokens, self.policy.num_hidden(tokens.num_tokens), self.style)
        return hidden, self.corrupted(tokens, scored_mask(hidden, tokens.valid), generator)

    def corrupted(self, tokens: Tokens, hidden: Tensor, generator: torch.Generator | None) -> Tokens:
        """The tokens the BERT-style encoder sees: as the policy's ``corrupt`` rewrites them, if it has one."""
        corrupt = getattr(self.policy, "corrupt", None)
        if self.style == "mae" or corrupt is None:
            return tokens
        return corrupt(tokens, hidden, generator)

    def step(self, tokens: Tokens, hidden: Tensor, seen: Tokens) -> MaskedOutput:
        """Predict and score with every random choice made: no generator, static shapes, no host sync."""
        pred, index = self.predict(tokens, hidden, self.policy.num_hidden(tokens.num_tokens), seen=seen)
        return self.score(tokens, hidden, pred, index)

    def predict(
        self, tokens: Tokens, hidden: Tensor, num_hidden: int, generator: torch.Generator | None = None, seen: Tokens | None = None
    ) -> tuple[Tensor, Tensor]:
        """Head outputs at ``num_hidden`` slots per sample: (pred [B, K, ...], token index [B, K]).
        Slots holding a void token (spare slots) have an index but are never scored. BERT style
        encodes ``seen`` (default: the policy's corruption drawn from ``generator``)."""
        hidden = scored_mask(hidden, tokens.valid)  # a void token is never hidden: there is nothing to predict
        if self.style == "mae":
            return self.forward_mae(tokens, hidden, num_hidden)
        if seen is None:
            seen = self.corrupted(tokens, hidden, generator)
        return self.forward_bert(tokens, hidden, num_hidden, seen)

    def forward_mae(self, tokens: Tokens, hidden: Tensor, num_hidden: int) -> tuple[Tensor, Tensor]:
        order = mae_order(hidden, tokens.valid)  # [B, N] visible, then void, then hidden
        y = mae_pass(
            self,
            self.embedder(tokens, hidden),
            order,
            num_hidden,
            tokens.valid,
            structure_of(self.embedder, tokens, hidden),
            self.embedder.decoder_positions(tokens),
            self.decoder_class_pos if self.decoder_reads_class_token else None,
        )
        return self.head(y), order[:, tokens.num_tokens - num_hidden :]

    def forward_bert(self, tokens: Tokens, hidden: Tensor, num_hidden: int, seen: Tokens) -> tuple[Tensor, Tensor]:
        x = self.encoder(self.embedder(seen, hidden), tokens.valid, structure=structure_of(self.embedder, tokens, hidden))
        index = hidden.to(torch.int8).argsort(dim=1, descending=True, stable=True)[:, :num_hidden]  # hidden first
        states = x.gather(1, index[..., None].expand(-1, -1, x.shape[-1]))  # [B, K, D]
        return self.head(states), index

    def score(self, tokens: Tokens, hidden: Tensor, pred: Tensor, index: Tensor) -> MaskedOutput:
        """Per-slot losses of the predictions at ``index`` against the target, by its own loss or the head's."""
        return score_slots(self.target, self._scorer(), self.modality.name, tokens, hidden, pred, index, self.policy)

    # -- using what was learned --------------------------------------------
    @torch.no_grad()
    def encode(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor | None]:
        """All tokens through the encoder, none hidden: ([B, N, D], valid)."""
        tokens = self.tokenizer.tokenize(batch)
        return self.encoder(self.embedder(tokens), tokens.valid, structure=structure_of(self.embedder, tokens, None)), tokens.valid

    @torch.no_grad()
    def features(self, batch: dict[str, Tensor]) -> Tensor:
        """[B, D] mean of the encoder's states over valid tokens (for probes), or the
        modality's own pooling ``Modality.pool(states, valid)`` when it sets one."""
        states, valid = self.encode(batch)
        if self.modality.pool is not None:
            return self.modality.pool(states, valid)
        if valid is None:
            return states.mean(dim=1)
        w = valid[..., None].to(states.dtype)
        return (states * w).sum(1) / w.sum(1).clamp_min(1.0)

    @torch.no_grad()
    def reconstruct(self, batch: dict[str, Tensor], generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """Detokenized (original, masked, reconstruction); visible tokens pasted back."""
        if not self.reconstructs:
            raise ConfigError(
                f"target {self.config['target'].get('name')!r} predicts no token values (features): there is no reconstruction to draw"
            )
        out = self(batch, generator=generator)
        tokens, hidden = out.tokens, out.hidden
        values = tokens.values.float()
        pred = self.target.to_values(out.pred.float(), tokens, out.index)  # [B, K, ...] in value space
        recon = values.scatter(1, out.index.view(*out.index.shape, *([1] * (values.dim() - 2))).expand_as(pred), pred)
        grey = (values.amin() + values.amax()) / 2
        shape = (*hidden.shape, *([1] * (values.dim() - 2)))
        masked = torch.where(hidden.view(shape), grey, values)
        detok = self.tokenizer.detokenize
        return detok(values, tokens), detok(masked, tokens), detok(recon, tokens)


def loss_part_names(scorer: Any, name: str) -> list[str]:
    """``[name]``, or ``name/part`` for each part a loss declares in ``loss_parts``."""
    parts = getattr(scorer, "loss_parts", None)
    return [f"{name}/{p}" for p in parts] if parts else [name]


def score_slots(
    target: Any, scorer: Any, name: str, tokens: Tokens, hidden: Tensor, pred: Tensor, index: Tensor, policy: Any = None
) -> MaskedOutput:
    """Score predictions at token ``index`` [B, K] against ``target(tokens)``: hidden ∩ valid slots
    weigh 1, or what the masking ``policy``'s ``token_weights(scored, valid)`` gives them where it
    returns a [B, N] tensor (masked diffusion's ELBO weights); spare (void) slots 0; loss parts are
    named after ``name`` (the modality or stream)."""
    with torch.no_grad():  # a target is data, even when a frozen network computes it
        values = target(tokens)  # [B, N, ...]
    values = values.gather(1, index.view(*index.shape, *([1] * (values.dim() - 2))).expand(-1, -1, *values.shape[2:]))
    scored = scored_mask(hidden, tokens.valid)
    weight = scored.gather(1, index).to(torch.float32)  # [B, K]
    token_weights = getattr(policy, "token_weights", None)
    weights = token_weights(scored, tokens.valid) if token_weights is not None else None
    if weights is not None:
        weight = weight * weights.gather(1, index)
    losses = scorer.loss(pred, values)  # [B, K] float32, or {part: [B, K]}
    names = loss_part_names(scorer, name)
    if isinstance(losses, dict):
        parts = {f"{name}/{k}": v for k, v in losses.items()}
        if list(parts) != names:
            raise PluginError(f"the loss of {name!r} returned parts {list(losses)}, not the declared loss_parts {names}")
    else:
        parts = {names[0]: losses}
    token_loss = sum(parts.values())
    loss = (token_loss * weight).sum() / weight.sum().clamp_min(1.0)
    return MaskedOutput(loss, token_loss, weight, pred, index, hidden, tokens, parts)


def scored_mask(hidden: Tensor, valid: Tensor | None) -> Tensor:
    """hidden ∩ valid: the tokens predicted and scored."""
    return hidden if valid is None else hidden & valid


def mae_order(hidden: Tensor, valid: Tensor | None) -> Tensor:
    """[B, N] token order for MAE routing: visible ∩ valid first, then void, then hidden ∩ valid.

    With the counts `check_hidden` enforces, the first N - K are the encoder's
    slots (spare ones void) and the last K the predicted slots (spare ones void).
    """
    tier = 2 * hidden.to(torch.int8)
    if valid is not None:
        tier = torch.where(valid, tier, torch.ones_like(tier))
    return tier.argsort(dim=1, stable=True)


def mae_pass(
    model: nn.Module,
    x: Tensor,
    order: Tensor,
    num_hidden: int,
    valid: Tensor | None,
    structure: Tensor | None,
    decoder_positions: Tensor,
    class_position: Tensor | None = None,
) -> Tensor:
    """The MAE encoder and decoder over embedded tokens ``x`` [B, N, D] routed by ``order`` [B, N]
    (encoder slots first, the ``num_hidden`` predicted slots last): decoder states [B, K, Dd] of the
    predicted slots. ``model`` holds ``encoder``, ``decoder_embed``, ``mask_token`` and ``decoder``;
    ``valid``, ``structure`` and ``decoder_positions`` [B or 1, N, Dd] are in token order.

    With ``class_position`` [1, 1, Dd] (``model.decoder_reads_class_token``, ViTMAE's decoder) the
    encoder's class-token output goes through ``decoder_embed`` too and is prepended to the decoder's
    input with that position: a key and value for every decoder row, never an output.
    """
    B, N, D = x.shape
    V = N - num_hidden
    valid = None if valid is None else valid.gather(1, order)
    structure = reorder_structure(structure, order)
    h = model.encoder(
        x.gather(1, order[:, :V, None].expand(-1, -1, D)),
        None if valid is None else valid[:, :V],
        structure=None if structure is None else structure[..., :V, :V],
        keep_prefix=class_position is not None,
    )
    y = model.decoder_embed(h)  # [B, V, Dd] (with the class row first: [B, 1 + V, Dd])
    if class_position is not None:
        cls, y = y[:, :1] + class_position.to(y.dtype), y[:, 1:]
    y = torch.cat([y, model.mask_token.to(y.dtype).expand(B, num_hidden, -1)], dim=1)  # [B, N, Dd]
    # attention is permutation-equivariant, so the decoder runs in shuffled order with
    # positions gathered to match: no un-shuffle, and the predicted slots are the last K rows
    y = y + decoder_positions.expand(B, -1, -1).gather(1, order[..., None].expand(-1, -1, y.shape[-1]))
    if class_position is not None:  # cls [B, 1, Dd]: one row per sample
        y, valid, structure = with_prefix(cls, y, valid, structure)
    return model.decoder(y, valid, keep_last=num_hidden, structure=structure)  # predicted rows only


def structure_of(embedder: nn.Module, tokens: Tokens, hidden: Tensor | None) -> Tensor | None:
    """The attention structure the embedder brings (``structure(tokens, hidden)``), else the tokenizer's."""
    own = getattr(embedder, "structure", None)
    return own(tokens, hidden) if own is not None else tokens.structure


def scorer_of(target: Any, head: nn.Module) -> Any:
    """The part whose ``loss`` scores predictions: the target when it brings one, else the head."""
    return target if callable(getattr(target, "loss", None)) else head


def reorder_structure(structure: Tensor | None, order: Tensor) -> Tensor | None:
    """A [B, (h,) N, N] attention structure with rows and columns permuted by ``order`` [B, N]."""
    if structure is None:
        return None
    s = structure if structure.dim() == 4 else structure[:, None]
    B, H, N, _ = s.shape
    rows = order[:, None, :, None].expand(B, H, N, N)
    s = s.gather(2, rows).gather(3, order[:, None, None, :].expand(B, H, N, N))
    return s if structure.dim() == 4 else s[:, 0]


def check_routable(policy: Any, name: str, style: str) -> None:
    """A policy whose hidden count is not a fixed budget (``fixed_budget = False``) cannot feed the
    MAE style's fixed encoder slots."""
    if style == "mae" and not getattr(policy, "fixed_budget", True):
        raise ConfigError(
            f"masking policy {name!r} hides a count drawn per batch or per row, which the MAE style's fixed "
            "encoder slots cannot route; accepted: model.style=bert with this policy, or another policy"
        )


def check_hidden(hidden: Tensor, tokens: Tokens, num_hidden: int, style: str) -> None:
    """A caller's mask must be [B, N] bool and routable (see `mmcore.contract`); a ConfigError says why not.

    Runs only for masks passed in (one host sync); masks the policy draws keep the rule by construction.
    """
    B, N = tokens.batch_size, tokens.num_tokens
    if tuple(hidden.shape) != (B, N) or hidden.dtype != torch.bool:
        raise ConfigError(f"hidden: expected a [B, N] = [{B}, {N}] bool mask (True = hidden), got {tuple(hidden.shape)} {hidden.dtype}")
    valid = tokens.valid if tokens.valid is not None else torch.ones_like(hidden)
    scored = (hidden & valid).sum(dim=1)
    visible = (~hidden & valid).sum(dim=1)
    over = (scored > num_hidden).nonzero().flatten().tolist()
    if over:
        raise ConfigError(
            f"hidden: sample(s) {over} hide {scored[over].tolist()} valid tokens, more than the "
            f"model predicts per sample ({num_hidden} = masking.num_hidden({N})); accepted: at most "
            f"{num_hidden} hidden valid tokens per sample"
        )
    crowded = (visible > N - num_hidden).nonzero().flatten().tolist()
    if style == "mae" and crowded:
        raise ConfigError(
            f"hidden: sample(s) {crowded} leave {visible[crowded].tolist()} valid tokens visible, more "
            f"than the encoder's {N - num_hidden} slots (N {N} - {num_hidden} hidden); accepted: at "
            f"least {num_hidden} tokens per sample hidden or void, so no visible token is dropped"
        )


def own_frozen_target(model: nn.Module, target: nn.Module, prefix: str = "target.") -> None:
    """A target with weights (a teacher) is a frozen submodule kept out of the saved weights.

    Its parameters get no gradient, so no optimizer group holds them; its state (keys under
    ``prefix``) is dropped from ``state_dict`` (it reloads from its own options) and not expected
    by ``load_state_dict``.
    """
    target.requires_grad_(False).eval()
    model.frozen_targets.append(target)
    leave_out_of_state(model, lambda key: key.startswith(prefix))


def leave_out_of_state(model: nn.Module, left_out: Callable[[str], bool]) -> None:
    """Keys for which ``left_out(key)`` holds are dropped from ``model.state_dict()`` and not expected by
    ``load_state_dict``: weights the model rebuilds itself (a frozen teacher, a tied matrix)."""

    def drop(module, state, key_prefix, local_metadata) -> None:
        for key in [k for k in state if k.startswith(key_prefix) and left_out(k[len(key_prefix) :])]:
            del state[key]

    def allow_missing(module, incompatible) -> None:  # keys may carry the prefixes of DDP or torch.compile wrappers
        incompatible.missing_keys[:] = [
            k for k in incompatible.missing_keys if not left_out(k.removeprefix("module.").removeprefix("_orig_mod."))
        ]

    model.register_state_dict_post_hook(drop)
    model.register_load_state_dict_post_hook(allow_missing)


def tie_head(model: nn.Module, tokenizer: Any, embedder: nn.Module, head: nn.Module, prefix: str, style: str) -> None:
    """``tokenizer.tie_embeddings``: the head's output matrix is the embedder's token table (BERT, ESM).

    The shared matrix is stored once, under the embedder's key, as transformers saves tied weights:
    the head's keys (``prefix`` + the names its ``tie_to`` returns) are dropped from ``state_dict``
    (safetensors refuses aliased tensors) and not expected by ``load_state_dict`` (the model ties
    them again when built), so model folders and checkpoints load as any other.
    """
    if not getattr(tokenizer, "tie_embeddings", False):
        return
    tie = getattr(head, "tie_to", None)
    if style != "bert" or tie is None or not hasattr(embedder, "tokens"):
        raise ConfigError(
            f"model.tokenizer.tie_embeddings needs style bert and a vocabulary head and token table "
            f"(text, protein); got style {style!r}, head {type(head).__name__}; accepted: "
            "tie_embeddings false, or model.style=bert with a discrete-token modality"
        )
    tied = {prefix + name for name in tie(embedder)}
    leave_out_of_state(model, tied.__contains__)


def build_part(lookup, modality: str, options: dict[str, Any]) -> Any:
    """Instantiate a registered dataclass part from ``{"name": ..., **options}``."""
    options = dict(options)
    cls = lookup(modality, options.pop("name"))
    return cls(**options)


PART_KINDS = {"modality": "modalities", "masking": "policies", "target": "targets", "dataset": "datasets"}


def check_plugins(config: dict[str, Any], check_modality: bool = True) -> None:
    """Say which plugins to install, and for which parts, when a model needs some that are missing or too old:
    one error naming every one of them with its ``pip install`` line. config.json comes from strangers, so a
    line is shown only for a valid distribution name and version (`mmcore.plugins.install_hint`)."""
    registry = get_registry()
    for key in ("parts", "plugins"):
        if not isinstance(config.get(key) or {}, dict):
            raise DataError(f"config.json: {key!r} is a {type(config[key]).__name__}, expected a mapping")
    for_part = {}
    for part, src in (config.get("parts") or {}).items():
        if isinstance(src, dict) and src.get("plugin"):
            for_part.setdefault(src["plugin"], []).append(f"{part} {src.get('name')!r}")
    problems = []
    for dist, version in (config.get("plugins") or {}).items():
        what = ", ".join(for_part.get(dist, [f"modality {config.get('modality')!r}"]))
        if not isinstance(version, str) or install_hint(dist, version) is None:
            problems.append(
                f"the plugin {dist!r} version {version!r} for its {what}, which is not a valid "
                f"distribution name and version (PEP 508 name, PEP 440 version): no install command shown"
            )
            continue
        try:
            installed = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            problems.append(f"the plugin {dist}>={version} for its {what}, which is not installed: {install_hint(dist, version)}")
            continue
        if Version(installed) < Version(version):
            problems.append(f"{dist}>={version} for its {what}, found {installed}: {install_hint(dist, version, upgrade=True)}")
    if problems:
        raise PluginError("this model needs " + "; and ".join(problems))
    if check_modality:
        registry.modality(config.get("modality", "?"))


def record_sources(config: dict[str, Any], dataset: str | None = None) -> dict[str, Any]:
    """``parts`` (the plugin and version behind the modality, masking policy, target and dataset)
    and ``plugins`` ({distribution: version} of all of them), as ``config.json`` stores them."""
    modality = config["modality"]
    keys = {"modality": modality, "masking": (modality, config["masking"]["name"]), "target": (modality, config["target"]["name"])}
    if dataset is not None:
        keys["dataset"] = (modality, dataset)
    parts = {part: {"name": key if isinstance(key, str) else key[1], **_source(PART_KINDS[part], key)} for part, key in keys.items()}
    plugins = {src["plugin"]: src["version"] for src in parts.values() if src.get("plugin")}
    return {"parts": parts, "plugins": plugins}


def _source(kind: str, key: Any) -> dict[str, str]:
    registry = get_registry()
    owner = registry.plugins.get(registry.owner.get((kind, key), ""))
    if owner is None or owner.distribution is None:  # registered in-process (tests), not by a distribution
        return {}
    return {"plugin": owner.distribution, "version": owner.version}


def record_joint_sources(config: dict[str, Any], datasets: dict[str, str]) -> dict[str, Any]:
    """`record_sources` for every stream of a joint model; part keys are ``<stream>.<part>``."""
    parts, plugins = {}, {}
    for stream, entry in config["modalities"].items():
        one = record_sources({"modality": entry["modality"], "masking": entry["masking"], "target": entry["target"]}, datasets.get(stream))
        parts.update({f"{stream}.{part}": src for part, src in one["parts"].items()})
        plugins.update(one["plugins"])
    return {"parts": parts, "plugins": plugins}
