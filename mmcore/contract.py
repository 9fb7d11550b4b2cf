"""The tokenize → mask → predict contract every modality plugin implements.

Every token is one of three kinds:

* **visible** – the encoder sees it;
* **hidden** – the model must predict it, and the loss scores it;
* **void** – nothing is there (padding, a naturally missing cell): it is never
  a key in attention and never scored.

`Tokens.valid` is False for void tokens (``None`` means "all valid", the fast
path that passes no attention mask). A masking policy returns ``hidden``
(True = hidden); the loss is taken on ``hidden & valid``.

Mask convention, stated once: in every mask in mmcore, **True means hidden**
(masking), **True means real** (``valid``) or **True means may attend**
(``structure``).

Routing rule of the MAE style (``encoder sees visible tokens only``). For N
tokens and ``K = policy.num_hidden(N)`` the encoder holds ``N - K`` slots and
the decoder predicts at ``K`` slots, shapes fixed by N alone. Per sample, at
most ``K`` tokens may be hidden ∩ valid and at most ``N - K`` visible ∩ valid;
slots left over on either side are filled with void tokens — never with a
visible token (that would drop it from the encoder) nor a hidden one (it would
leak into the encoder). Void tokens are keys of nothing and scored never. A
mask a caller passes that breaks the rule is a ``ConfigError``; policies keep
it by construction (fixed count, or ``round(ratio × valid_length)``). The BERT
style scores at most ``K`` hidden ∩ valid tokens per sample, under the same check.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from mmcore.errors import ConfigError


@dataclass
class Tokens:
    """A batch of tokens on the device.

    values:    [B, N, ...] token values (patch pixels, ids, point groups, ...).
    positions: [B or 1, N, P] whatever the modality's embedder needs to place
               a token (grid coordinates, indices, xyz centres, column ids).
    valid:     [B, N] bool, False = void; ``None`` when every token is real. A sample's
               void tokens come after its real ones (padding at the end).
    meta:      plain data about the geometry (grid size, patch size, original
               shape, ...) that ``detokenize``, masking policies and targets
               may read.
    structure: optional attention structure the modality brings (graph
               adjacency, channel or segment blocks, packed sequences):
               [B, N, N] bool, True = the row token may attend the column
               token, or a float additive bias [B, N, N] / [B, heads, N, N].
               The model reorders and slices it with the tokens (MAE routing,
               the decoder's last rows); ``None`` (default) passes no mask.
    """

    values: Tensor
    positions: Tensor
    valid: Tensor | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    structure: Tensor | None = None

    @property
    def batch_size(self) -> int:
        return self.values.shape[0]

    @property
    def num_tokens(self) -> int:
        return self.values.shape[1]

    def to(self, device: torch.device | str) -> Tokens:
        valid = None if self.valid is None else self.valid.to(device)
        structure = None if self.structure is None else self.structure.to(device)
        return replace(self, values=self.values.to(device), positions=self.positions.to(device), valid=valid, structure=structure)


@runtime_checkable
class Tokenizer(Protocol):
    """Raw samples ↔ tokens.

    ``collate`` runs in data-loader workers (CPU: decode, resize, pad);
    ``tokenize`` runs on the device inside the step (reshapes, no host sync);
    ``detokenize`` is its inverse, used for pictures, infilling and imputation.

    Optional: ``fit(train_dataset)`` learns what the tokenizer needs from the
    training split (normalisation statistics, a vocabulary) by setting its own
    dataclass fields; the executor calls it before building the model and
    stores the fitted fields in ``config.json``, so the model folder restores
    them.

    Optional: ``placeholder(length=None) -> sample``, a sample of the trained
    size whose values do not matter (a blank image, ``length`` mask tokens):
    the shape of a modality a joint model predicts wholly from the others
    (``mm fill --predict``).
    """

    def collate(self, samples: list[Any]) -> dict[str, Tensor]: ...

    def tokenize(self, batch: dict[str, Tensor]) -> Tokens: ...

    def detokenize(self, values: Tensor, tokens: Tokens) -> Tensor: ...


@runtime_checkable
class MaskingPolicy(Protocol):
    """Chooses hidden tokens among valid ones.

    ``num_hidden(n)`` is the number of hidden tokens per sample for ``n``
    tokens, computed from the shape alone so that every shape in the step is
    static. Fixed-size modalities hide exactly that many in every sample;
    variable-length ones hide at most that many (budgeted by valid length).

    ``scores`` are per-token scores from the previous step (e.g. the loss),
    for adaptive policies; plain policies ignore them.

    A policy must keep the routing rule stated at the top of this module. One
    whose count is drawn per batch (masked diffusion) sets the class attribute
    ``fixed_budget = False``; the MAE style then refuses it.
    """

    ratio: float

    def num_hidden(self, num_tokens: int) -> int: ...

    def __call__(self, tokens: Tokens, generator: torch.Generator | None = None, scores: Tensor | None = None) -> Tensor: ...

    # Optional, BERT style only: ``corrupt(tokens, hidden, generator) -> Tokens``
    # rewrites the values the encoder sees (BERT's 80% [MASK] / 10% random /
    # 10% kept); the model calls it when the policy defines it.
    # Optional: ``token_weights(scored, valid) -> Tensor [B, N] | None`` weighs each scored
    # token's loss (masked diffusion's per-sample ELBO weights L/k); the executor divides by the
    # summed weights, so weights that sum to the valid length keep the loss per token.


@runtime_checkable
class Target(Protocol):
    """Tokens → prediction targets [B, N, ...].

    A separate step, registered by name per modality, so that a third party
    can add targets (HOG, a frozen teacher's features) to an existing
    modality without forking it. Like every configurable part it is a
    dataclass of recipe options.

    Optional:

    * ``to_values(pred, tokens, index)`` maps predictions at token indices
      ``index`` [B, K] back to token values (undoing e.g. per-patch
      normalisation) for reconstructions and pictures; a target whose
      predictions have no value form (features) leaves it out, and the model
      then draws no reconstruction.

    * ``bind(tokenizer)``: called once when the model is built, so the target
      can read the tokenizer's geometry (patch size, channels, vocabulary).
    * ``loss(pred, target) -> [B, K] float32``: the target scores the head's
      predictions itself (the head then only maps states to ``dim`` outputs);
      without it the modality's ``Head.loss`` is used.
    * A target that holds weights (a frozen teacher loaded from a model
      folder) may be an ``nn.Module``: the model owns it, so Accelerate moves
      it with the model, but its parameters are frozen, left out of the
      optimizer and out of the model's weights file (it reloads from its own
      options, which ``config.json`` records).
    """

    def dim(self, tokenizer: Tokenizer) -> int:
        """Size of one token's target (the head's output size)."""
        ...

    def __call__(self, tokens: Tokens) -> Tensor: ...


class Embedder(nn.Module):
    """Token values and positions → [B, N, dim] encoder inputs.

    The backbone knows no positions, so the embedder adds them, and gives the
    MAE-style decoder its own position embeddings through
    ``decoder_positions``. ``hidden`` [B, N] bool is passed in both styles
    whenever a mask exists (None only for plain features), so an embedder that
    mixes tokens (message passing, convolutions) can keep hidden values out of
    the others. In BERT style (``decoder_dim`` None) the embedder represents
    hidden tokens as it sees fit (a learned mask vector before positions are
    added, or ids a policy already corrupted); in MAE style hidden tokens are
    dropped before the encoder, so it need not replace them.

    Optional ``structure(tokens, hidden) -> Tensor | None``: an attention
    structure the embedder brings (see `Tokens.structure`); without it the
    tokenizer's ``tokens.structure`` is used.

    It is built as ``embedder(tokenizer, dim, decoder_dim)``; ``decoder_dim``
    is None in BERT style (no decoder). Create only the parameters the style
    uses — a mask vector only when ``decoder_dim is None``, decoder position
    tables only when it is not — because DDP rejects parameters that get no
    gradient.
    """

    def forward(self, tokens: Tokens, hidden: Tensor | None = None) -> Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def decoder_positions(self, tokens: Tokens) -> Tensor:  # pragma: no cover - interface
        """[B or 1, N, decoder_dim] position embeddings for the decoder."""
        raise NotImplementedError


class Head(nn.Module):
    """Decoder states at hidden positions → predictions, and per-token losses.

    ``forward(states)`` maps [B, K, dim] to [B, K, ...] predictions.
    ``loss(pred, target)`` returns a [B, K] float32 loss per hidden token; the
    executor weights and reduces it (so scored subsets, per-modality weights
    and multimodal budgets are one code path). A loss with named parts (MSE
    for numbers, cross-entropy for categories) declares ``loss_parts = ("a",
    "b")`` and returns ``{"a": [B, K], "b": [B, K]}`` (zero where a part does
    not apply): recipes weigh them as ``train.loss_weights.<modality>/a``.
    """

    def forward(self, states: Tensor) -> Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def loss(self, pred: Tensor, target: Tensor) -> Tensor:  # pragma: no cover - interface
        raise NotImplementedError


@dataclass
class Modality:
    """A named bundle of the parts the core runs for every batch.

    Every configurable part (tokenizer, masking policy, target, dataset) is a
    dataclass: its fields are the recipe's options, an instance is the part.

    tokenizer:  dataclass type whose instances are `Tokenizer` s.
    embedder:   ``(tokenizer, dim, decoder_dim) -> Embedder``.
    head:       ``(tokenizer, target, dim) -> Head``.
    style:      ``"mae"`` (encoder on visible tokens + light decoder) or
                ``"bert"`` (mask token at the input, head on hidden positions).
    picture:    ``(original, masked, reconstruction) -> PIL.Image`` from three
                detokenized batches; used by model cards and tensorboard.
    read_file:  ``(tokenizer, path) -> sample`` reading one user file into an
                item ``tokenizer.collate`` accepts (``mm reconstruct``).
    pool:       optional ``(states [B, N, D], valid [B, N] bool or None) -> [B, F]``
                turning encoder states into one feature vector per sample for
                `MaskedModel.features` (probes); None (default) = mean over
                valid tokens, F = D.
    from_record: optional ``(tokenizer, record, generator) -> sample``: one
                record of a streamed dataset as an item ``tokenizer.collate``
                accepts. With it, the core's ``hf`` (Hugging Face datasets) and
                ``webdataset`` (tar shards) datasets work for the modality
                (`mmcore.streams`). ``record`` is a dict as the engine yields
                it, undecoded: column → value from datasets (str, numbers,
                lists, ``{"bytes", "path"}`` for Image/Audio columns) or
                extension → bytes from a tar shard (``png``, ``cls``, ``txt``;
                ``__key__``); `mmcore.records` reads either form. Every random
                draw comes from ``generator``; a record it cannot use is a
                `DataError` (the core adds the shard and record number).
    Masking policies, targets and datasets are registered separately, keyed
    by the modality's name, so other plugins can add to them.
    """

    name: str
    tokenizer: type
    embedder: Callable[..., Embedder]
    head: Callable[..., Head]
    default_policy: str
    default_target: str
    style: str = "mae"
    picture: Callable[..., Any] | None = None
    read_file: Callable[..., Any] | None = None
    description: str = ""
    pool: Callable[..., Any] | None = None
    from_record: Callable[..., Any] | None = None


SPLITS = ("train", "test")

# A registered dataset is a dataclass of options whose ``build(tokenizer, split)``
# returns a map-style dataset: ``len()`` and ``[index] -> sample``. One that
# draws randomness per sample (a crop, a flip, a window) also defines
# ``get(index, generator)`` and draws all of it from ``generator``: the executor
# seeds it by (seed, epoch, index), so a resumed run reads the same samples as
# an uninterrupted one (`mmcore.batches`); ``[index]`` is ``get(index, None)``.
# Bad files are a `DataError` naming the file; folder readers take
# ``on_error: raise|skip``.


def check_split(split: str) -> None:
    """A dataset's ``build(tokenizer, split)`` calls this first: only ``SPLITS`` exist."""
    if split not in SPLITS:
        raise ConfigError(f"dataset split {split!r} is unknown; accepted: 'train' or 'test'")
