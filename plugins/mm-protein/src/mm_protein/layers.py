"""The protein embedder and head: mmcore's discrete-token parts, with the options ESM-2 needs.

With the tokenizer's defaults they are `TokenEmbedder` and `VocabHead` exactly (same computation,
same weights' keys). The options (`ProteinTokenizer`: ``positions``, ``embed_norm``,
``token_dropout``, ``norm_eps``) give transformers' ``EsmEmbeddings`` and ``EsmLMHead``:

* no learned position table when the encoder's rotary positions place the tokens (``positions: none``);
* no LayerNorm on the embeddings (ESM-2's ``emb_layer_norm_before: false``);
* ESM's token dropout: ``<mask>`` embeddings zeroed, the others scaled by
  (1 - 0.15·0.8) / (1 - the share of ``<mask>`` among the row's valid tokens);
* void (padding) rows zeroed, as ESM multiplies by its attention mask;
* the head's dense → GELU → LayerNorm → linear with bias, its LayerNorm at ``norm_eps``
  (ESM ties the linear to the token embeddings; here it is its own weight, equal on import).
"""

from __future__ import annotations

from torch import Tensor

from mmcore.contract import Tokens
from mmcore.discrete import TokenEmbedder, VocabHead

MASK_RATIO_TRAIN = 0.15 * 0.8  # ESM's token dropout assumes this share of <mask> (all ESM training runs)


class ProteinEmbedder(TokenEmbedder):
    def __init__(self, tokenizer, dim: int, decoder_dim: int | None) -> None:
        super().__init__(tokenizer, dim, decoder_dim)
        self.learned = getattr(tokenizer, "positions", "learned") == "learned"
        self.embed_norm = getattr(tokenizer, "embed_norm", True)
        self.token_dropout = getattr(tokenizer, "token_dropout", False)
        self.plain = self.learned and self.embed_norm and not self.token_dropout  # TokenEmbedder as it is
        if not self.learned:  # created only when asked for: default models keep their weights' keys
            del self.positions
        if not self.embed_norm:
            del self.norm
        else:
            self.norm.eps = getattr(tokenizer, "norm_eps", self.norm.eps)

    def forward(self, tokens: Tokens, hidden: Tensor | None = None) -> Tensor:
        if self.plain:
            return super().forward(tokens, hidden)
        ids = tokens.values
        self._check_length(ids.shape[1])
        if hidden is not None and self.bert_style and not tokens.meta.get("corrupted", False):
            ids = ids.masked_fill(hidden, self.mask_id)
        x = self.tokens(ids)
        if self.token_dropout:  # ESM: masked positions carry nothing, the rest rescaled to the training share
            masked = ids == self.mask_id
            x = x.masked_fill(masked[..., None], 0.0)
            length = ids.shape[1] if tokens.valid is None else tokens.valid.sum(-1)
            observed = masked.sum(-1).float() / length
            # a row of masks only is all zeros (ESM would divide by zero): the clamp keeps it zeros, not NaN
            x = (x * (1 - MASK_RATIO_TRAIN) / (1 - observed).clamp_min(1e-6)[:, None, None]).to(x.dtype)
        if self.learned:
            x = x + self.positions.weight[: ids.shape[1]]
        if self.embed_norm:
            x = self.norm(x)
        if tokens.valid is not None:  # ESM zeroes padding rows (they are never attended to nor scored)
            x = (x * tokens.valid[..., None]).to(x.dtype)
        return x


class ProteinHead(VocabHead):
    def __init__(self, tokenizer, target, dim: int) -> None:
        super().__init__(tokenizer, target, dim)
        self.transform[2].eps = getattr(tokenizer, "norm_eps", self.transform[2].eps)
