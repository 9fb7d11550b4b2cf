"""mmcore's text model ↔ transformers' ``BertForMaskedLM``, weight for weight.

Why the two can match exactly: mmcore's text parts are BERT's already, up to
options. The embedder is word + learned absolute position tables then a
LayerNorm, the head dense → GELU → LayerNorm → vocabulary logits with a bias;
what BERT adds is a post-norm encoder (a LayerNorm after each residual sum, no
final norm: ``encoder.norm_placement: post``), one LayerNorm epsilon everywhere
(``encoder.norm_eps`` and ``tokenizer.norm_eps``, 1e-12) and token types.

Token types: mmcore's text inputs are one segment, so BERT always adds its
token-type row 0 (``token_type_ids`` default to zeros). BERT computes
``(word + type0) + position``; folding ``type0`` into every word row is that
very first sum, so the embeddings are bit for bit BERT's. (Folding it into the
position table instead, ``word + (position + type0)``, rounds differently:
~1e-7 at the input, up to ~1e-5 in the logits of a random model.) Exports
write zero token-type rows, so any ``token_type_ids`` give mmcore's function.

The output layer: BERT ties its decoder to the word embeddings; mmcore's head
has its own projection, so an import copies BERT's decoder matrix (the word
rows without ``type0``) into it, and an export writes ``tie_word_embeddings``
true only when the two are equal, else false with the decoder weight saved on
its own (so an imported BERT goes back out untied: its word rows hold
``type0``). Either way the logits are equal.

Inputs: mmcore's text tokenizer adds no [CLS]/[SEP] (BERT's tokenizer adds
them), so outputs are compared on the same token ids, with the same padding
(mmcore's ``valid`` is BERT's ``attention_mask``). An export carries
``encoder.dropout`` into BERT's hidden and attention dropout (inactive in evaluation, so the
outputs compared are the same); an import leaves mmcore's at 0.

Refused by name, never converted approximately: other activations (``gelu_new``,
``relu``...), relative position embeddings (``position_embedding_type``
``relative_key``/``relative_key_query``), decoder (causal) or cross-attention
configurations, a folder without the vocabulary its ids mean; on export, a
pre-norm text model, a class token, an MAE-style text model, unequal
embedder/encoder epsilons and backbone options BERT lacks.

It lives in the text plugin because it needs the text tokenizer; the plugin's ``register_peers``
hook hands `export_bert` and `import_bert` to `mmcore.interop`.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from mmcore.errors import ConfigError, DataError, MMCoreError
from mmcore.interop.timm_vit import NoExactPeer
from mmcore.interop.transformers_folder import float_weights, load_pretrained, quiet_transformers, read_config_json

from .tokenizer import TextTokenizer

MODEL_TYPE = "bert"
ARCHITECTURES = ("BertForMaskedLM", "BertForPreTraining")  # both hold BertForMaskedLM's weights
LEFT_OUT = ("bert.pooler.", "cls.seq_relationship.")  # BertForPreTraining's NSP parts: no mmcore counterpart
MAPPED_ENCODER = ("dim", "depth", "heads", "mlp_ratio", "norm_eps", "norm_placement")  # what BertConfig holds
POST_NORM = (
    "BERT's layers are post-norm (a LayerNorm after each residual sum, no final norm); train the text "
    "model with model.encoder.norm_placement=post (and model.tokenizer.norm_eps equal to "
    "model.encoder.norm_eps) for an exact BertForMaskedLM"
)


def transformers_module():
    try:
        import transformers
    except ImportError:
        raise MMCoreError("transformers is not installed: pip install 'transformers>=4.40'") from None
    return transformers


# -- transformers → mmcore ---------------------------------------------------------


def read_config(folder: Path) -> dict[str, Any]:
    path = folder / "config.json"
    cfg = read_config_json(path)
    if not isinstance(cfg, dict) or cfg.get("model_type") != MODEL_TYPE:
        kind = cfg.get("model_type") if isinstance(cfg, dict) else None
        raise NoExactPeer(f"{path}: model_type {kind!r}; this mapping reads BERT only ('bert')")
    return cfg


def differences(cfg: dict[str, Any]) -> list[str]:
    """What in a BERT config.json (as written, before transformers reads it) mmcore cannot reproduce exactly."""
    out = []
    act = cfg.get("hidden_act", "gelu")
    if act != "gelu":
        out.append(f"hidden_act {act!r}; mmcore's MLP and head use exact GELU ('gelu')")
    pos = cfg.get("position_embedding_type", "absolute")
    if pos != "absolute":
        out.append(
            f"position_embedding_type {pos!r}; mmcore's text embedder has learned absolute positions only "
            "('absolute'), no relative-distance attention terms"
        )
    if cfg.get("is_decoder") or cfg.get("add_cross_attention"):
        out.append("is_decoder/add_cross_attention: a causal or cross-attending BERT; mmcore's encoder is bidirectional self-attention")
    archs = cfg.get("architectures")
    if archs and not set(archs) & set(ARCHITECTURES):
        out.append(f"architectures {archs}: no masked-LM head to import; accepted: {', '.join(ARCHITECTURES)}")
    D, heads, hidden = cfg.get("hidden_size", 768), cfg.get("num_attention_heads", 12), cfg.get("intermediate_size", 3072)
    if isinstance(D, int) and isinstance(heads, int) and heads > 0 and D % heads:
        out.append(f"hidden_size {D} is not divisible by num_attention_heads {heads}")
    elif isinstance(D, int) and isinstance(hidden, int) and D > 0 and int(D * (hidden / D)) != hidden:
        out.append(f"intermediate_size {hidden} is not int(hidden_size x ratio) for any ratio")
    if cfg.get("embedding_size") not in (None, D):
        out.append(f"embedding_size {cfg['embedding_size']} differs from hidden_size {D} (a factorised embedding)")
    return out


def load_bert(folder: Path) -> tuple[nn.Module, dict[str, Any], list[str]]:
    """(the BertForMaskedLM a ``save_pretrained`` folder holds, every weight present; its config.json; notes)."""
    cfg = read_config(folder)
    found = differences(cfg)
    if found:
        raise NoExactPeer("BERT differs from mmcore's text model: " + "; ".join(found) + "; nothing written")
    peer, left = load_pretrained(transformers_module().BertForMaskedLM, folder, LEFT_OUT)
    notes = (
        [
            "left out: "
            + ", ".join(sorted({k.rsplit(".", 1)[0] for k in left}))
            + " (next-sentence prediction; mmcore's text model has no pooler)"
        ]
        if left
        else []
    )
    return peer, cfg, notes


def vocabulary(folder: Path, cfg: dict[str, Any]) -> dict[str, Any]:
    """The text tokenizer's options for the folder's own vocabulary (tokenizer.json, else vocab.txt),
    kept whole as ``tokenizer_json`` so the model folder needs nothing outside it."""
    if not ((folder / "tokenizer.json").is_file() or (folder / "vocab.txt").is_file()):
        raise DataError(
            f"{folder}: no vocab.txt or tokenizer.json; accepted: the BERT folder with the vocabulary "
            "its ids mean (tokenizer.save_pretrained writes both), which mmcore's text model keeps"
        )
    lowercase = True
    tc = folder / "tokenizer_config.json"
    if tc.is_file():
        try:
            lowercase = bool(json.loads(tc.read_text(encoding="utf-8")).get("do_lower_case", True))
        except (OSError, ValueError, AttributeError) as exc:
            raise DataError(f"{tc}: not a tokenizer config ({type(exc).__name__}: {exc})") from None
    max_length, eps = int(cfg.get("max_position_embeddings", 512)), float(cfg.get("layer_norm_eps", 1e-12))
    try:
        tok = TextTokenizer(path=str(folder), lowercase=lowercase, max_length=max_length, norm_eps=eps)
    except ConfigError as exc:
        raise DataError(f"{folder}: its vocabulary cannot serve mmcore's text model: {exc}") from None
    V = int(cfg.get("vocab_size", 30522))
    if tok.vocab_size != V:
        raise DataError(
            f"{folder}: the vocabulary holds {tok.vocab_size} tokens, the model's embeddings {V} rows; "
            "accepted: a vocabulary of exactly vocab_size tokens (ids must mean the same)"
        )
    return {"tokenizer_json": tok.backend.to_str(), "lowercase": lowercase, "max_length": max_length, "norm_eps": eps}


def from_bert(peer: nn.Module, tokenizer: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """(mmcore BERT-style text config, every weight of embedder, encoder and head) for a checked BERT."""
    from mmcore.config import ModelConfig

    cfg = peer.config
    D, eps = cfg.hidden_size, float(cfg.layer_norm_eps)
    config = {
        "modality": "text",
        "style": "bert",
        "tokenizer": tokenizer,
        "masking": {"name": "bert"},
        "target": {"name": "ids"},  # BERT's 15 % with 80/10/10
        "encoder": {
            "dim": D,
            "depth": cfg.num_hidden_layers,
            "heads": cfg.num_attention_heads,
            "mlp_ratio": cfg.intermediate_size / D,
            "norm_eps": eps,
            "norm_placement": "post",
        },
        "decoder": dataclasses.asdict(ModelConfig().decoder),  # unused in BERT style; config.json holds one
    }
    d = lambda t: t.detach().clone().float()
    emb, pred = peer.bert.embeddings, peer.cls.predictions
    state = {
        # token type 0 is added to every token: folded into the word rows, BERT's own first sum (bit for bit)
        "embedder.tokens.weight": d(emb.word_embeddings.weight) + d(emb.token_type_embeddings.weight[0]),
        "embedder.positions.weight": d(emb.position_embeddings.weight),
        "embedder.norm.weight": d(emb.LayerNorm.weight),
        "embedder.norm.bias": d(emb.LayerNorm.bias),
        "head.transform.0.weight": d(pred.transform.dense.weight),
        "head.transform.0.bias": d(pred.transform.dense.bias),
        "head.transform.2.weight": d(pred.transform.LayerNorm.weight),
        "head.transform.2.bias": d(pred.transform.LayerNorm.bias),
        "head.proj.weight": d(pred.decoder.weight),  # the tied word matrix as BERT's logits use it (no type row)
        "head.proj.bias": d(pred.decoder.bias if pred.decoder.bias is not None else pred.bias),
    }
    for i, layer in enumerate(peer.bert.encoder.layer):
        state.update({f"encoder.blocks.{i}.{ours}": value for ours, value in block_weights(layer, d).items()})
    return config, state


def block_weights(layer: nn.Module, d) -> dict[str, Tensor]:
    """One BertLayer's weights under mmcore's block names (q, k, v fused into qkv; norm1 after attention)."""
    a, out = layer.attention.self, layer.attention.output
    return {
        "attn.qkv.weight": torch.cat([d(a.query.weight), d(a.key.weight), d(a.value.weight)]),
        "attn.qkv.bias": torch.cat([d(a.query.bias), d(a.key.bias), d(a.value.bias)]),
        "attn.proj.weight": d(out.dense.weight),
        "attn.proj.bias": d(out.dense.bias),
        "norm1.weight": d(out.LayerNorm.weight),
        "norm1.bias": d(out.LayerNorm.bias),
        "mlp.0.weight": d(layer.intermediate.dense.weight),
        "mlp.0.bias": d(layer.intermediate.dense.bias),
        "mlp.2.weight": d(layer.output.dense.weight),
        "mlp.2.bias": d(layer.output.dense.bias),
        "norm2.weight": d(layer.output.LayerNorm.weight),
        "norm2.bias": d(layer.output.LayerNorm.bias),
    }


def import_bert(folder: str | os.PathLike[str], output: str | os.PathLike[str]) -> tuple[Path, float, list[str]]:
    """An mmcore text model folder at ``output`` whose masked-LM logits are the BERT folder's.

    Returns (the folder, max abs logit difference on random padded ids, notes)."""
    from mmcore.interop import free_output, model_from_peer, write_atomic

    folder = Path(folder).expanduser()
    out = free_output(output)
    peer, cfg, notes = load_bert(folder)
    config, state = from_bert(peer, vocabulary(folder, cfg))
    model = model_from_peer(config, state, folder, "BERT")
    diff = logits_difference(model, peer)
    write_atomic(out, model.save_pretrained)
    types = peer.bert.embeddings.token_type_embeddings.weight.shape[0]
    notes.append(
        "token type 0 folded into the word embeddings (mmcore's inputs are one segment); the output "
        "layer keeps BERT's untouched tied matrix, so an export writes it untied"
        + (f"; the other {types - 1} token-type row(s) left out" if types > 1 else "")
    )
    notes.append("mmcore's text tokenizer adds no [CLS]/[SEP]: give them in the text where the model expects them")
    return out, diff, notes


# -- mmcore → transformers ---------------------------------------------------------


def check_exportable(model: Any) -> None:
    """What an mmcore text model must be to have an exact BertForMaskedLM (one-line NoExactPeer else)."""
    from mmcore.backbone import TransformerConfig
    from mmcore.discrete import TokenEmbedder, TokenIdTarget, VocabHead

    where = "no exact transformers peer for this text model"
    if model.style != "bert":
        raise NoExactPeer(
            f"{where}: style {model.style!r} has a light MAE decoder BertForMaskedLM has no place for "
            "(its head reads the encoder); accepted: model.style=bert"
        )
    enc = model.encoder.config
    if enc.norm_placement != "post":
        raise NoExactPeer(
            f"{where}: encoder.norm_placement is {enc.norm_placement!r} (a LayerNorm before each sublayer and a final one); {POST_NORM}"
        )
    if enc.class_token:
        raise NoExactPeer(f"{where}: encoder.class_token prepends a learned token without a position; BERT's [CLS] is an ordinary input id")
    default = TransformerConfig()
    other = [
        f.name
        for f in dataclasses.fields(TransformerConfig)
        if f.name not in MAPPED_ENCODER + ("class_token",) and getattr(enc, f.name) != getattr(default, f.name)
    ]
    if other:
        raise NoExactPeer(f"{where}: encoder option(s) {', '.join(other)} set; BertConfig has nothing for them")
    for part, cls in (("embedder", TokenEmbedder), ("head", VocabHead)):
        mine = getattr(model, part)
        if not isinstance(mine, cls) or type(mine).forward is not cls.forward:
            raise NoExactPeer(f"{where}: the {part} is a {type(mine).__name__}, not mmcore's {cls.__name__} (BERT's embeddings / MLM head)")
    if not isinstance(model.target, TokenIdTarget):
        raise NoExactPeer(f"{where}: the target {type(model.target).__name__} does not predict token ids")
    keys = {k.removeprefix("embedder.") for k in model.state_dict() if k.startswith("embedder.")}
    if keys != {"tokens.weight", "positions.weight", "norm.weight", "norm.bias"}:
        raise NoExactPeer(f"{where}: the embedder holds {sorted(keys)}; BERT's embeddings hold word and position tables and one LayerNorm")
    eps = float(getattr(model.tokenizer, "norm_eps", 1e-6))
    if eps != enc.norm_eps:
        raise NoExactPeer(
            f"{where}: tokenizer.norm_eps {eps} (embeddings and head) differs from encoder.norm_eps "
            f"{enc.norm_eps}; BERT has one layer_norm_eps"
        )


def to_bert(model: Any) -> nn.Module:
    """A BertForMaskedLM holding ``model``'s embedder, encoder and head."""
    check_exportable(model)
    transformers = transformers_module()
    tok, enc = model.tokenizer, model.encoder.config
    ours = float_weights(model)
    D, V = enc.dim, tok.vocab_size
    tied = bool(torch.equal(ours["head.proj.weight"], ours["embedder.tokens.weight"]))
    cfg = transformers.BertConfig(
        vocab_size=V,
        hidden_size=D,
        num_hidden_layers=enc.depth,
        num_attention_heads=enc.heads,
        intermediate_size=int(D * enc.mlp_ratio),
        hidden_act="gelu",
        max_position_embeddings=tok.max_length,
        type_vocab_size=2,
        layer_norm_eps=enc.norm_eps,
        pad_token_id=int(tok.pad_id),
        tie_word_embeddings=tied,
        hidden_dropout_prob=float(enc.dropout),
        attention_probs_dropout_prob=float(enc.dropout),  # training only: the compared outputs are unaffected
        architectures=["BertForMaskedLM"],
    )
    with quiet_transformers():
        peer = transformers.BertForMaskedLM(cfg)
    state = {
        "bert.embeddings.word_embeddings.weight": ours["embedder.tokens.weight"],
        "bert.embeddings.position_embeddings.weight": ours["embedder.positions.weight"],
        "bert.embeddings.token_type_embeddings.weight": torch.zeros(2, D),  # any token type adds nothing
        "bert.embeddings.LayerNorm.weight": ours["embedder.norm.weight"],
        "bert.embeddings.LayerNorm.bias": ours["embedder.norm.bias"],
        "cls.predictions.transform.dense.weight": ours["head.transform.0.weight"],
        "cls.predictions.transform.dense.bias": ours["head.transform.0.bias"],
        "cls.predictions.transform.LayerNorm.weight": ours["head.transform.2.weight"],
        "cls.predictions.transform.LayerNorm.bias": ours["head.transform.2.bias"],
        "cls.predictions.decoder.weight": ours["head.proj.weight"],
        "cls.predictions.decoder.bias": ours["head.proj.bias"],
        "cls.predictions.bias": ours["head.proj.bias"],
    }
    for i in range(enc.depth):
        for module, path in PEER_BLOCK.items():
            for kind in ("weight", "bias"):
                state[f"bert.encoder.layer.{i}.{path}.{kind}"] = ours[f"encoder.blocks.{i}.{module}.{kind}"]
        p = f"bert.encoder.layer.{i}.attention.self."
        for kind in ("weight", "bias"):  # the fused qkv back into query, key, value
            q, k, v = ours[f"encoder.blocks.{i}.attn.qkv.{kind}"].chunk(3)
            state.update({f"{p}query.{kind}": q, f"{p}key.{kind}": k, f"{p}value.{kind}": v})
    expected = set(peer.state_dict())
    if set(state) != expected:
        raise MMCoreError(f"internal: BERT export misses {sorted(expected - set(state))[:3]} or adds {sorted(set(state) - expected)[:3]}")
    peer.load_state_dict({k: v.contiguous() for k, v in state.items()}, strict=True)
    return peer.eval()


PEER_BLOCK = {  # mmcore block module → BertLayer module (the fused qkv is split apart)
    "attn.proj": "attention.output.dense",
    "norm1": "attention.output.LayerNorm",
    "mlp.0": "intermediate.dense",
    "mlp.2": "output.dense",
    "norm2": "output.LayerNorm",
}


def save_bert(peer: nn.Module, model: Any, folder: Path) -> None:
    """transformers' own folder (``save_pretrained``: config.json + model.safetensors), and the vocabulary as
    a fast tokenizer (tokenizer.json + tokenizer_config.json; vocab.txt too for a WordPiece vocabulary)."""
    transformers = transformers_module()
    from tokenizers import Tokenizer

    with quiet_transformers():
        peer.save_pretrained(str(folder))
        backend = Tokenizer.from_str(model.tokenizer.backend.to_str())  # a copy: the model's keeps its settings
        vocab = backend.get_vocab()
        specials = {
            f"{role}_token": name
            for role, name in (("mask", model.tokenizer.mask_token), ("pad", "[PAD]"), ("unk", "[UNK]"), ("cls", "[CLS]"), ("sep", "[SEP]"))
            if name in vocab
        }
        fast = transformers.PreTrainedTokenizerFast(tokenizer_object=backend, model_max_length=model.tokenizer.max_length, **specials)
        fast.save_pretrained(str(folder))
    if type(backend.model).__name__ == "WordPiece":  # BertTokenizer's own format, ids in order
        words = sorted(vocab, key=vocab.__getitem__)
        (folder / "vocab.txt").write_text("".join(w + "\n" for w in words), encoding="utf-8")


def export_bert(model: Any, output: str | os.PathLike[str]) -> tuple[Path, float]:
    """Write ``model`` (an mmcore text model built with the BERT options) as a BertForMaskedLM folder.

    Returns (the folder, max abs logit difference on random padded ids)."""
    from mmcore.interop import free_output, write_atomic

    check_exportable(model)
    out = free_output(output)
    peer = to_bert(model)
    diff = logits_difference(model, peer)
    write_atomic(out, lambda tmp: save_bert(peer, model, tmp))
    return out, diff


# -- the check ----------------------------------------------------------------------


def random_ids(model: Any, batch: int = 2, seed: int = 0) -> tuple[Tensor, Tensor]:
    """(ids [B, N], valid [B, N]): seeded random ids over the whole vocabulary, every row but the first
    padded (pad id, valid False) after a shorter length."""
    tok = model.tokenizer
    N = min(tok.max_length, 16)
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, tok.vocab_size, (batch, N), generator=g)
    valid = torch.ones(batch, N, dtype=torch.bool)
    for b in range(1, batch):
        valid[b, max(1, N - 3 * b) :] = False
    return ids.masked_fill(~valid, int(tok.pad_id)), valid


def mmcore_logits(model: Any, ids: Tensor, valid: Tensor) -> Tensor:
    """[B, N, V] masked-LM logits at every position, nothing hidden."""
    batch = {"ids": ids, "word_ids": torch.arange(ids.shape[1]).expand_as(ids).clone(), "valid": valid}
    states, _ = model.encode(batch)
    with torch.no_grad():
        return model.head(states)


def peer_logits(peer: nn.Module, ids: Tensor, valid: Tensor) -> Tensor:
    with torch.no_grad():
        return peer(input_ids=ids, attention_mask=valid.long()).logits


def logits_difference(model: Any, peer: nn.Module) -> float:
    """Max abs difference of the two models' logits at valid positions of a padded random batch;
    refused above `mmcore.interop.TOLERANCE`."""
    from mmcore.interop import TOLERANCE

    ids, valid = random_ids(model)
    diff = (mmcore_logits(model, ids, valid) - peer_logits(peer, ids, valid))[valid].abs().max().item()
    if not diff <= TOLERANCE:
        raise NoExactPeer(
            f"the converted models disagree: max abs logit difference {diff:.3g} on random ids (accepted: <= {TOLERANCE}); nothing written"
        )
    return diff
