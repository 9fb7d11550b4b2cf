"""transformers' ``EsmForMaskedLM`` (the ESM-2 layout) ↔ mmcore's protein masked language model, weight for weight.

Why the two can match exactly: ESM-2's layers are pre-norm with exact GELU like mmcore's, and
its alphabet is the protein plugin's id for id. What differs is carried by options (defaults
leave every other model unchanged): rotary positions in attention, queries scaled before they
are rotated (``encoder.rotary``, ``encoder.rotary_base``: ESM's ``rope_theta``); no learned
position table and no embedding LayerNorm (``tokenizer.positions: none``, ``tokenizer.embed_norm``:
ESM's ``emb_layer_norm_before``); ESM's token dropout (``tokenizer.token_dropout``: ``<mask>``
embeddings zeroed, the rest rescaled by the row's share of masks); one LayerNorm epsilon
(``encoder.norm_eps`` and ``tokenizer.norm_eps``: ESM's ``layer_norm_eps``); ``<cls>`` ... ``<eos>``
around each sequence (``tokenizer.ends``). The layouts: separate q/k/v become the fused qkv;
ESM's LM head (dense → GELU → LayerNorm → decoder + bias) is mmcore's head part for part, its
decoder tied to the token embeddings there (copied on import; tied again on export when the two
are still equal, else written with ``tie_word_embeddings: false``).

Refused by name: learned absolute positions (ESM-1b, ESM-1v), causal or cross attention, ESMFold,
another vocabulary, rotary frequencies stored at another precision than computed, and, on export,
a protein model without the options above (learned positions, no rotary, MAE style, post-norm).

It lives in the protein plugin because it needs the protein alphabet; the plugin's ``register_peers``
hook hands `export_esm` and `import_esm` to `mmcore.interop`.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from mmcore.errors import DataError, MMCoreError
from mmcore.interop.timm_vit import NoExactPeer
from mmcore.interop.transformers_folder import float_weights, load_pretrained, quiet_transformers, read_config_json

from .alphabet import TOKENS

MODEL_TYPE = "esm"
CHECK_LENGTH = 40  # tokens of the random sequences the conversions are checked on (at most max_length)


def transformers_esm():
    try:
        from transformers import EsmConfig, EsmForMaskedLM
    except ImportError:
        raise MMCoreError("transformers is not installed: pip install 'transformers>=4.40'") from None
    return EsmConfig, EsmForMaskedLM


def alphabet() -> list[str]:
    return list(TOKENS)


# -- transformers → mmcore -----------------------------------------------------------


def load_esm(folder: Path) -> nn.Module:
    """The ``EsmForMaskedLM`` a ``save_pretrained`` folder holds, every weight present (safetensors only)."""
    _, EsmForMaskedLM = transformers_esm()
    config = folder / "config.json"
    cfg = read_config(config)
    if cfg.get("model_type") != MODEL_TYPE:
        raise NoExactPeer(f"{config}: model_type {cfg.get('model_type')!r}; expected 'esm'")
    found = differences_in(cfg, folder)  # from the JSON alone: nothing is built for a refused folder
    if found:
        raise NoExactPeer("EsmForMaskedLM differs from mmcore's protein model: " + "; ".join(found))
    return load_pretrained(EsmForMaskedLM, folder)[0]


def read_config(config: Path) -> dict[str, Any]:
    cfg = read_config_json(config)
    if not isinstance(cfg, dict):
        raise DataError(f"{config}: not a JSON object; accepted: the config.json save_pretrained writes")
    return cfg


def differences_in(cfg: dict[str, Any], folder: Path | None = None) -> list[str]:
    """What in an ESM config.json (and the folder's vocab.txt) mmcore's protein model cannot reproduce exactly."""
    out = []
    get = cfg.get
    kind = get("position_embedding_type", "absolute")
    if kind != "rotary":
        out.append(
            f"position_embedding_type {kind!r}: learned positions numbered from the padding index "
            "(ESM-1b, ESM-1v); mmcore maps ESM-2's rotary layout only"
        )
    if get("is_decoder") or get("add_cross_attention"):
        out.append("is_decoder / add_cross_attention: causal or cross attention; mmcore's encoder is bidirectional")
    if get("is_folding_model"):
        out.append("is_folding_model: an ESMFold model; mmcore imports the ESM-2 language model only")
    tokens = alphabet()
    ids = {"vocab_size": len(tokens), "pad_token_id": tokens.index("<pad>"), "mask_token_id": tokens.index("<mask>")}
    for key, want in ids.items():
        if get(key) != want:
            out.append(f"{key} {get(key)!r}; mmcore's protein alphabet is ESM-2's ({key} {want})")
    vocab = folder / "vocab.txt" if folder is not None else None
    listed = get("vocab_list") or (vocab.read_text(encoding="utf-8").split() if vocab and vocab.is_file() else None)
    if listed is not None and list(listed) != tokens:
        first = next((i for i, (a, b) in enumerate(zip(listed, tokens)) if a != b), min(len(listed), len(tokens)))
        out.append(f"its vocabulary differs from ESM-2's alphabet from id {first} on; mmcore's protein ids are ESM-2's")
    D, H, inner = get("hidden_size", 768), get("num_attention_heads", 12), get("intermediate_size", 3072)
    if not all(isinstance(v, int) and v > 0 for v in (D, H, inner)) or D % H or (D // H) % 2:
        out.append(f"hidden_size {D} / num_attention_heads {H} is not an even whole head width (rotary turns pairs)")
    elif int(D * (inner / D)) != inner:
        out.append(f"intermediate_size {inner} is not int(hidden_size x ratio) for any ratio")
    for key in ("rope_scaling", "rope_parameters"):
        rope = get(key)
        if isinstance(rope, dict) and rope.get("rope_type", rope.get("type", "default")) != "default":
            out.append(f"{key} {rope}: scaled rotary positions; mmcore computes ESM's default rotary frequencies")
    return out


def from_esm(peer: nn.Module) -> tuple[dict[str, Any], dict[str, Tensor], list[str]]:
    """(mmcore protein-MLM config, its weights, notes) for an ``EsmForMaskedLM`` with no differences."""
    from mmcore.config import ModelConfig

    cfg = peer.config
    D, H, L, eps = cfg.hidden_size, cfg.num_attention_heads, cfg.num_hidden_layers, float(cfg.layer_norm_eps)
    esm, head = peer.esm, peer.lm_head
    base = float(getattr(cfg, "rope_theta", 10000.0))
    stored = esm.rotary_embeddings.inv_freq.detach().float().cpu()
    hd = D // H
    computed = 1.0 / (base ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
    if stored.shape != computed.shape or not torch.equal(stored, computed):
        off = (stored - computed).abs().max().item() if stored.shape == computed.shape else float("nan")
        raise NoExactPeer(
            f"its stored rotary frequencies (inv_freq) differ from ESM's computed ones by {off:.3g} "
            "(saved at another precision); mmcore computes them, so outputs would differ"
        )
    config = {
        "modality": "protein",
        "style": "bert",
        "tokenizer": {
            "max_length": int(cfg.max_position_embeddings),
            "ends": True,
            "positions": "none",
            "embed_norm": bool(cfg.emb_layer_norm_before),
            "token_dropout": bool(cfg.token_dropout),
            "norm_eps": eps,
        },
        "masking": {"name": "bert", "ratio": 0.15, "mask_prob": 0.8, "random_prob": 0.1},
        "target": {"name": "ids"},
        "encoder": {
            "dim": D,
            "depth": L,
            "heads": H,
            "mlp_ratio": cfg.intermediate_size / D,
            "norm_eps": eps,
            "rotary": True,
            "rotary_base": base,
        },
        "decoder": dataclasses.asdict(ModelConfig().decoder),  # unused in the BERT style; config.json holds one
    }
    d = lambda t: t.detach().float().clone()  # noqa: E731
    emb = esm.embeddings
    state = {
        "embedder.tokens.weight": d(emb.word_embeddings.weight),
        "encoder.norm.weight": d(esm.encoder.emb_layer_norm_after.weight),
        "encoder.norm.bias": d(esm.encoder.emb_layer_norm_after.bias),
        "head.transform.0.weight": d(head.dense.weight),
        "head.transform.0.bias": d(head.dense.bias),
        "head.transform.2.weight": d(head.layer_norm.weight),
        "head.transform.2.bias": d(head.layer_norm.bias),
        "head.proj.weight": d(head.decoder.weight),
        "head.proj.bias": d(head.bias),
    }
    if emb.layer_norm is not None:
        state["embedder.norm.weight"], state["embedder.norm.bias"] = d(emb.layer_norm.weight), d(emb.layer_norm.bias)
    for i, layer in enumerate(esm.encoder.layer):
        a, key = layer.attention, f"encoder.blocks.{i}."
        s = a.self
        state.update(
            {
                key + "norm1.weight": d(a.LayerNorm.weight),
                key + "norm1.bias": d(a.LayerNorm.bias),
                key + "attn.qkv.weight": torch.cat([d(s.query.weight), d(s.key.weight), d(s.value.weight)]),
                key + "attn.qkv.bias": torch.cat([d(s.query.bias), d(s.key.bias), d(s.value.bias)]),
                key + "attn.proj.weight": d(a.output.dense.weight),
                key + "attn.proj.bias": d(a.output.dense.bias),
                key + "norm2.weight": d(layer.LayerNorm.weight),
                key + "norm2.bias": d(layer.LayerNorm.bias),
                key + "mlp.0.weight": d(layer.intermediate.dense.weight),
                key + "mlp.0.bias": d(layer.intermediate.dense.bias),
                key + "mlp.2.weight": d(layer.output.dense.weight),
                key + "mlp.2.bias": d(layer.output.dense.bias),
            }
        )
    notes = [
        "sequences are read as <cls> residues <eos>, as ESM reads them (tokenizer.ends); max_length "
        f"{cfg.max_position_embeddings} tokens counts both",
        "the contact-prediction head (esm.contact_head) is left out: mmcore has none",
    ]
    if cfg.tie_word_embeddings:
        notes.append(
            "the LM head's output weights are their own here (ESM ties them to the token embeddings): "
            "equal now, they may part in fine-tuning (export then writes tie_word_embeddings: false)"
        )
    return config, state, notes


# -- mmcore → transformers -----------------------------------------------------------


def check_exportable(model: Any) -> None:
    """What an mmcore protein model must be to have an exact ``EsmForMaskedLM`` (one-line NoExactPeer else)."""
    config = getattr(model, "config", {})
    why = "EsmForMaskedLM is ESM-2's layout"
    if config.get("modality") != "protein":
        raise NoExactPeer(f"no exact EsmForMaskedLM for modality {config.get('modality')!r}: it is a protein model")
    if getattr(model, "style", None) != "bert":
        raise NoExactPeer(
            f"style {getattr(model, 'style', None)!r}: {why}, one BERT-style encoder reading every "
            "token (mmcore's MAE style drops hidden tokens before the encoder)"
        )
    enc, tok = model.encoder.config, model.tokenizer
    found = []
    if not getattr(enc, "rotary", False):
        found.append("encoder.rotary is off: ESM-2 places tokens by rotary positions in attention (position_embedding_type rotary)")
    if getattr(tok, "positions", "learned") != "none":
        found.append(
            "tokenizer.positions is 'learned': a learned position table added to the embeddings, which "
            "ESM-2 has not (ESM-1b's absolute positions count from the padding index, not from 0)"
        )
    if getattr(enc, "norm_placement", "pre") != "pre":
        found.append(f"encoder.norm_placement {enc.norm_placement!r}: ESM-2 is pre-norm")
    if enc.class_token:
        found.append("encoder.class_token: ESM has no learned prefix token (its <cls> is an ordinary token id)")
    if getattr(tok, "norm_eps", None) != enc.norm_eps:
        found.append(
            f"tokenizer.norm_eps {getattr(tok, 'norm_eps', None)} and encoder.norm_eps {enc.norm_eps} differ: ESM has one layer_norm_eps"
        )
    if model.head.transform[2].eps != enc.norm_eps:
        found.append(f"the head's LayerNorm eps {model.head.transform[2].eps} is not encoder.norm_eps {enc.norm_eps}")
    if found:
        raise NoExactPeer(f"no exact transformers EsmForMaskedLM for this protein model ({why}): " + "; ".join(found))


def to_esm(model: Any) -> nn.Module:
    """An ``EsmForMaskedLM`` holding ``model``'s weights (checked by `check_exportable` first)."""
    check_exportable(model)
    EsmConfig, EsmForMaskedLM = transformers_esm()
    enc, tok = model.encoder.config, model.tokenizer
    ours = float_weights(model)
    tied = torch.equal(ours["head.proj.weight"], ours["embedder.tokens.weight"])
    tokens = alphabet()
    cfg = EsmConfig(
        vocab_size=len(tokens),
        pad_token_id=tokens.index("<pad>"),
        mask_token_id=tokens.index("<mask>"),
        hidden_size=enc.dim,
        num_hidden_layers=enc.depth,
        num_attention_heads=enc.heads,
        intermediate_size=int(enc.dim * enc.mlp_ratio),
        hidden_dropout_prob=float(enc.dropout),  # training only, as mmcore's encoder.dropout
        attention_probs_dropout_prob=float(enc.dropout),
        max_position_embeddings=tok.max_length + (0 if tok.ends else 2),  # ESM's tokenizer adds <cls> and <eos>
        layer_norm_eps=enc.norm_eps,
        position_embedding_type="rotary",
        rope_theta=float(enc.rotary_base),
        emb_layer_norm_before=bool(tok.embed_norm),
        token_dropout=bool(tok.token_dropout),
        tie_word_embeddings=tied,
        architectures=["EsmForMaskedLM"],
    )
    peer = EsmForMaskedLM(cfg).eval()
    state = {k: v.clone() for k, v in peer.state_dict().items()}
    state.update(
        {
            "esm.embeddings.word_embeddings.weight": ours["embedder.tokens.weight"],
            "esm.encoder.emb_layer_norm_after.weight": ours["encoder.norm.weight"],
            "esm.encoder.emb_layer_norm_after.bias": ours["encoder.norm.bias"],
            "esm.contact_head.regression.weight": torch.zeros_like(state["esm.contact_head.regression.weight"]),
            "esm.contact_head.regression.bias": torch.zeros_like(state["esm.contact_head.regression.bias"]),
            "lm_head.dense.weight": ours["head.transform.0.weight"],
            "lm_head.dense.bias": ours["head.transform.0.bias"],
            "lm_head.layer_norm.weight": ours["head.transform.2.weight"],
            "lm_head.layer_norm.bias": ours["head.transform.2.bias"],
            "lm_head.decoder.weight": ours["head.proj.weight"],
            "lm_head.bias": ours["head.proj.bias"],
        }
    )
    if tok.embed_norm:
        state["esm.embeddings.layer_norm.weight"] = ours["embedder.norm.weight"]
        state["esm.embeddings.layer_norm.bias"] = ours["embedder.norm.bias"]
    D = enc.dim
    for i in range(enc.depth):
        key, theirs = f"encoder.blocks.{i}.", f"esm.encoder.layer.{i}."
        qkv_w, qkv_b = ours[key + "attn.qkv.weight"], ours[key + "attn.qkv.bias"]
        for j, name in enumerate(("query", "key", "value")):
            state[f"{theirs}attention.self.{name}.weight"] = qkv_w[j * D : (j + 1) * D]
            state[f"{theirs}attention.self.{name}.bias"] = qkv_b[j * D : (j + 1) * D]
        for ours_key, peer_key in (
            ("norm1", "attention.LayerNorm"),
            ("attn.proj", "attention.output.dense"),
            ("norm2", "LayerNorm"),
            ("mlp.0", "intermediate.dense"),
            ("mlp.2", "output.dense"),
        ):
            state[f"{theirs}{peer_key}.weight"] = ours[f"{key}{ours_key}.weight"]
            state[f"{theirs}{peer_key}.bias"] = ours[f"{key}{ours_key}.bias"]
    peer.load_state_dict({k: v.contiguous() for k, v in state.items()}, strict=True)
    return peer


def save_esm(peer: nn.Module, folder: Path) -> None:
    """transformers' own folder (config.json + model.safetensors) and ESM's tokenizer files (vocab.txt ...),
    so ``EsmForMaskedLM.from_pretrained`` and ``AutoTokenizer.from_pretrained`` read it."""
    from transformers import EsmTokenizer

    with quiet_transformers():
        peer.save_pretrained(str(folder), safe_serialization=True)
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(alphabet()) + "\n", encoding="utf-8")
    EsmTokenizer(vocab_file=str(vocab), model_max_length=peer.config.max_position_embeddings).save_pretrained(str(folder))


# -- the check both ways --------------------------------------------------------------


def random_sequences(max_length: int, batch: int = 3, seed: int = 0) -> tuple[Tensor, Tensor]:
    """(ids [B, N], valid [B, N]): <cls> random residues (some <mask>) <eos>, rows of three lengths padded
    with <pad> at the end, seeded."""
    tokens = alphabet()
    g = torch.Generator().manual_seed(seed)
    N = min(CHECK_LENGTH, max_length)
    ids = torch.randint(tokens.index("L"), tokens.index("C") + 1, (batch, N), generator=g)
    ids[torch.rand(batch, N, generator=g) < 0.15] = tokens.index("<mask>")
    lengths = [max(1, N - (N * i) // (batch + 1)) for i in range(batch)]
    valid = torch.arange(N)[None, :] < torch.tensor(lengths)[:, None]
    ids[:, 0] = tokens.index("<cls>")
    for r, n in enumerate(lengths):
        ids[r, n - 1] = tokens.index("<eos>") if n > 1 else ids[r, n - 1]
    return ids.masked_fill(~valid, tokens.index("<pad>")), valid


def our_logits(model: Any, ids: Tensor, valid: Tensor) -> Tensor:
    """[B, N, V] masked-LM logits at every token, the ids shown as they are (no token hidden)."""
    tokens = model.tokenizer.tokenize({"ids": ids, "valid": valid})
    with torch.no_grad():
        return model.head(model.encoder(model.embedder(tokens), tokens.valid, structure=tokens.structure))


def peer_logits(peer: nn.Module, ids: Tensor, valid: Tensor) -> Tensor:
    with torch.no_grad():
        return peer(input_ids=ids, attention_mask=valid.long()).logits


def logits_difference(model: Any, peer: nn.Module) -> float:
    """Max abs difference of the two masked-LM logits at the valid tokens of seeded random sequences
    (padded, with <mask>); refused above the commands' tolerance."""
    from mmcore.interop import TOLERANCE

    ids, valid = random_sequences(model.tokenizer.max_length)
    diff = (our_logits(model, ids, valid) - peer_logits(peer, ids, valid))[valid].abs().max().item()
    if not diff <= TOLERANCE:
        raise NoExactPeer(
            f"the converted models disagree: max abs difference {diff:.3g} of the masked-LM logits on "
            f"random sequences (accepted: <= {TOLERANCE}); nothing written"
        )
    return diff


def import_esm(folder: Path, output: str | os.PathLike[str]) -> tuple[Path, float, list[str]]:
    """``mm import DIR --from transformers`` for an ESM folder: an mmcore protein model folder at ``output``."""
    from mmcore.interop import free_output, model_from_peer, write_atomic

    out = free_output(output)

    peer = load_esm(folder)
    config, state, notes = from_esm(peer)
    model = model_from_peer(config, state, folder, "ESM")
    diff = logits_difference(model, peer)
    write_atomic(out, model.save_pretrained)
    return out, diff, notes


def export_esm(model: Any, output: str | os.PathLike[str]) -> tuple[Path, float]:
    """``mm export MODEL --to transformers`` for a protein model: an ``EsmForMaskedLM`` folder at ``output``."""
    from mmcore.interop import free_output, write_atomic

    out = free_output(output)
    peer = to_esm(model)
    diff = logits_difference(model.eval(), peer)
    write_atomic(out, lambda tmp: save_esm(peer, tmp))
    return out, diff
