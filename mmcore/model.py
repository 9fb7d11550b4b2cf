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
from dataclasses import dataclass
from typing import Any

import torch
from huggingface_hub import PyTorchModelHubMixin
from packaging.version import Version
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor, nn

from mmcore.backbone import Transformer, TransformerConfig
from mmcore.contract import Tokens
from mmcore.errors import DataError, PluginError
from mmcore.plugins import get_registry

STYLES = ("mae", "bert")


@dataclass
class MaskedOutput:
    loss: Tensor  # [] mean loss over hidden ∩ valid tokens
    token_loss: Tensor  # [B, K] per hidden slot
    weight: Tensor  # [B, K] 1.0 where the slot is hidden ∩ valid (scored)
    pred: Tensor  # [B, K, D] predictions in target space
    index: Tensor  # [B, K] token index of each hidden slot
    hidden: Tensor  # [B, N] bool, True = hidden
    tokens: Tokens


class MaskedModel(nn.Module, PyTorchModelHubMixin, library_name="mmcore", tags=["mmcore", "masked-modeling"]):
    """Built from a plain-dict ``config``: modality, style, tokenizer, masking,
    target, encoder and decoder options (see `mmcore.config.ModelConfig`)."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        check_plugins(config)
        registry = get_registry()
        self.config = config
        self.modality = registry.modality(config["modality"])
        self.style = config.get("style") or self.modality.style
        if self.style not in STYLES:
            raise PluginError(f"unknown style {self.style!r}; accepted: {', '.join(STYLES)}")
        self.tokenizer = self.modality.tokenizer(**config.get("tokenizer", {}))
        self.policy = build_part(registry.policy, config["modality"], config["masking"])
        self.target = build_part(registry.target, config["modality"], config["target"])
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

    # -- tokenize → mask → predict ---------------------------------------
    def forward(
        self,
        batch: dict[str, Tensor],
        generator: torch.Generator | None = None,
        hidden: Tensor | None = None,
    ) -> MaskedOutput:
        """``hidden`` [B, N] bool may be passed to fix the mask; else the policy draws it."""
        tokens = self.tokenizer.tokenize(batch)
        num_hidden = self.policy.num_hidden(tokens.num_tokens)
        if hidden is None:
            hidden = self.policy(tokens, generator=generator)
        if self.style == "mae":
            pred, index = self.forward_mae(tokens, hidden, num_hidden)
        else:
            pred, index = self.forward_bert(tokens, hidden, num_hidden, generator)
        return self.forward_loss(tokens, hidden, pred, index)

    def forward_mae(self, tokens: Tokens, hidden: Tensor, num_hidden: int) -> tuple[Tensor, Tensor]:
        x = self.embedder(tokens)  # [B, N, D]
        B, N, D = x.shape
        V = N - num_hidden
        order = hidden.to(torch.int8).argsort(dim=1, stable=True)  # [B, N] visible first, then hidden
        valid = None if tokens.valid is None else tokens.valid.gather(1, order)
        x = x.gather(1, order[:, :V, None].expand(-1, -1, D))  # [B, V, D]
        x = self.encoder(x, None if valid is None else valid[:, :V])
        y = self.decoder_embed(x)  # [B, V, Dd]
        y = torch.cat([y, self.mask_token.to(y.dtype).expand(B, num_hidden, -1)], dim=1)  # [B, N, Dd]
        # attention is permutation-equivariant, so the decoder runs in shuffled order with
        # positions gathered to match: no un-shuffle, and the hidden tokens are the last K rows
        pos = self.embedder.decoder_positions(tokens).expand(B, -1, -1)
        y = y + pos.gather(1, order[..., None].expand(-1, -1, y.shape[-1]))
        y = self.decoder(y, valid, keep_last=num_hidden)  # [B, K, Dd]: only hidden rows are needed
        return self.head(y), order[:, V:]

    def forward_bert(
        self, tokens: Tokens, hidden: Tensor, num_hidden: int, generator: torch.Generator | None
    ) -> tuple[Tensor, Tensor]:
        corrupt = getattr(self.policy, "corrupt", None)
        seen = corrupt(tokens, hidden, generator) if corrupt is not None else tokens
        x = self.encoder(self.embedder(seen, hidden), tokens.valid)  # [B, N, D]
        index = hidden.to(torch.int8).argsort(dim=1, descending=True, stable=True)[:, :num_hidden]  # hidden first
        states = x.gather(1, index[..., None].expand(-1, -1, x.shape[-1]))  # [B, K, D]
        return self.head(states), index

    def forward_loss(self, tokens: Tokens, hidden: Tensor, pred: Tensor, index: Tensor) -> MaskedOutput:
        target = self.target(tokens)  # [B, N, ...]
        target = target.gather(1, index.view(*index.shape, *([1] * (target.dim() - 2))).expand(-1, -1, *target.shape[2:]))
        scored = hidden if tokens.valid is None else hidden & tokens.valid
        weight = scored.gather(1, index).to(torch.float32)  # [B, K]
        token_loss = self.head.loss(pred, target)  # [B, K] float32
        loss = (token_loss * weight).sum() / weight.sum().clamp_min(1.0)
        return MaskedOutput(loss, token_loss, weight, pred, index, hidden, tokens)

    # -- using what was learned --------------------------------------------
    @torch.no_grad()
    def encode(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor | None]:
        """All tokens through the encoder, none hidden: ([B, N, D], valid)."""
        tokens = self.tokenizer.tokenize(batch)
        return self.encoder(self.embedder(tokens), tokens.valid), tokens.valid

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

    # -- the model folder ----------------------------------------------------
    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *, revision: str | None = None, **kwargs):
        """A folder, or a Hub repo id; Hub failures are one-line `HubError`s naming repo and revision."""
        from mmcore.hub import check_repo_id, hub_errors

        name = os.path.expanduser(str(pretrained_model_name_or_path))
        if os.path.isdir(name):
            return super().from_pretrained(name, revision=revision, **kwargs)
        if os.path.exists(name) or name.startswith((".", "/")) or name.count("/") > 1:
            raise DataError(f"no model folder at {name}: expected a folder with config.json and model.safetensors")
        check_repo_id(name)
        with hub_errors(name, revision):
            return super().from_pretrained(name, revision=revision, **kwargs)

    def push_to_hub(self, repo_id: str, *, model_card_kwargs: dict | None = None, **kwargs):
        """As the mixin's; the card's usage lines name ``repo_id``."""
        from mmcore.hub import check_repo_id, hub_errors

        with hub_errors(check_repo_id(repo_id), kwargs.get("branch"), "push"):
            return super().push_to_hub(repo_id, model_card_kwargs={"repo": repo_id, **(model_card_kwargs or {})},
                                       **kwargs)

    def generate_model_card(self, *args, info: dict | None = None, repo: str = "path/to/model", **kwargs):
        """The mmcore card (`mmcore.card`), not the mixin's generic one."""
        from huggingface_hub import ModelCard

        from mmcore.card import render_card

        return ModelCard(render_card(self.config, info or {}, repo))

    @classmethod
    def _from_pretrained(cls, *, model_id: str, revision=None, cache_dir=None, force_download=False,
                         local_files_only=False, token=None, map_location: str = "cpu", strict: bool = True,
                         **model_kwargs):
        """Weights from safetensors only (never pickle), loaded strictly."""
        from huggingface_hub import hf_hub_download

        model = cls(**model_kwargs)
        if os.path.isdir(model_id):
            path = os.path.join(model_id, "model.safetensors")
        else:
            from mmcore.hub import verify_download

            path = verify_download(hf_hub_download(model_id, "model.safetensors", revision=revision,
                                                   cache_dir=cache_dir, force_download=force_download, token=token,
                                                   local_files_only=local_files_only))
        try:
            state = load_file(path, device=str(map_location))
        except (SafetensorError, OSError) as exc:
            raise DataError(f"cannot read weights {path}: {exc}; expected an intact safetensors file") from exc
        missing, unexpected = model.load_state_dict(state, strict=False)
        if strict and (missing or unexpected):
            raise DataError(f"weights {path} do not match config: missing {missing[:5]}, unexpected {unexpected[:5]}")
        return model.eval()


def build_part(lookup, modality: str, options: dict[str, Any]) -> Any:
    """Instantiate a registered dataclass part from ``{"name": ..., **options}``."""
    options = dict(options)
    cls = lookup(modality, options.pop("name"))
    return cls(**options)


def check_plugins(config: dict[str, Any]) -> None:
    """Say which plugin to install when a model needs one that is missing or too old."""
    registry = get_registry()
    for dist, version in (config.get("plugins") or {}).items():
        try:
            installed = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            raise PluginError(
                f"this model needs the plugin {dist}>={version} for modality {config.get('modality')!r}, "
                f"which is not installed: pip install '{dist}>={version}'"
            ) from None
        if Version(installed) < Version(version):
            raise PluginError(f"this model needs {dist}>={version}, found {installed}: pip install -U '{dist}>={version}'")
    registry.modality(config.get("modality", "?"))


def plugin_versions(modality: str) -> dict[str, str]:
    """{distribution: version} of the plugin that registered ``modality``."""
    registry = get_registry()
    owner = registry.plugins.get(registry.owner.get(("modalities", modality), ""))
    if owner is None or owner.distribution is None:
        return {}
    return {owner.distribution: owner.version}
