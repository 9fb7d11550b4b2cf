"""transformers' ``ViTMAEForPreTraining`` (or ``ViTMAEModel``) encoder → mmcore's image MAE, weight for weight.

Why the encoders match: ViTMAE's layers are pre-norm with exact GELU like
mmcore's; only layouts differ: separate q/k/v become the fused qkv, the patch
conv becomes the (row, col, channel) linear, LayerNorm eps 1e-12 is
``encoder.norm_eps``, and its fixed sin-cos table, laid out column-first
(mmcore computes row-first), is loaded as a table (``tokenizer.positions:
fixed``); the class token carries its position row folded in.

Why the decoder is not imported: ViTMAE's decoder also reads the encoder's
class-token output as its first token, and mmcore's decoder sees patch tokens
only, so no weights would give its reconstructions. The imported model gets a
fresh decoder of the same shape (its fixed positions loaded), and the same
reason refuses export.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from mmcore.errors import DataError, MMCoreError
from mmcore.interop.timm_vit import NoExactPeer

DECODER_DIFFERS = ("ViTMAEForPreTraining's decoder reads the encoder's class-token output as its first token; "
                   "mmcore's MAE decoder sees patch tokens only")


def load_vitmae(folder: Path) -> tuple[nn.Module, dict[str, Any]]:
    """(the ViTMAE model a ``save_pretrained`` folder holds, loaded with every weight present; its
    preprocessor config, or {} when the folder has none)."""
    try:
        from transformers import ViTMAEForPreTraining, ViTMAEModel
        from transformers.utils import logging as hf_logging
    except ImportError:
        raise MMCoreError("transformers is not installed: pip install 'transformers>=4.40'") from None
    config, weights = folder / "config.json", folder / "model.safetensors"
    try:
        cfg = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"{config}: not a transformers config ({type(exc).__name__}: {exc}); accepted: the "
                        "config.json save_pretrained writes") from None
    if not isinstance(cfg, dict) or cfg.get("model_type") != "vit_mae":
        kind = cfg.get("model_type") if isinstance(cfg, dict) else None
        raise NoExactPeer(f"{config}: model_type {kind!r}; mmcore imports transformers' ViTMAE only ('vit_mae')")
    if not weights.is_file():
        raise DataError(f"{folder}: no model.safetensors; accepted: weights as safetensors "
                        "(pickled pytorch_model.bin is never read)")
    cls = ViTMAEModel if cfg.get("architectures") == ["ViTMAEModel"] else ViTMAEForPreTraining
    bars, verbosity = hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()  # the command's stderr is its one-line report: no bars, no load table
    hf_logging.set_verbosity_error()
    try:
        peer, info = cls.from_pretrained(str(folder), output_loading_info=True, use_safetensors=True)
    except (OSError, ValueError, TypeError, RuntimeError, KeyError) as exc:
        raise DataError(f"{folder}: transformers cannot load it as {cls.__name__}: "
                        f"{' '.join(str(exc).split())[:200]}") from None
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
    wrong = {k: info.get(k) for k in ("missing_keys", "unexpected_keys", "mismatched_keys") if info.get(k)}
    if wrong:
        raise DataError(f"weights {weights} do not match {cls.__name__}: "
                        + ", ".join(f"{k.replace('_keys', '')} {sorted(map(str, v))[:5]}" for k, v in wrong.items()))
    pre = folder / "preprocessor_config.json"
    try:
        processor = json.loads(pre.read_text(encoding="utf-8")) if pre.is_file() else {}
    except ValueError as exc:
        raise DataError(f"{pre}: not JSON ({exc})") from None
    return peer.eval(), processor


def differences(cfg: Any) -> list[str]:
    """What in a ViTMAE config mmcore's image encoder cannot reproduce exactly (empty: it can)."""
    out = []
    if cfg.hidden_act != "gelu":
        out.append(f"hidden_act {cfg.hidden_act!r}; mmcore's MLP uses exact GELU ('gelu')")
    head_dim = getattr(cfg, "head_dim", None)
    if head_dim is not None and head_dim * cfg.num_attention_heads != cfg.hidden_size:
        out.append(f"head_dim {head_dim} x {cfg.num_attention_heads} heads != hidden_size {cfg.hidden_size}")
    if int(cfg.hidden_size * (cfg.intermediate_size / cfg.hidden_size)) != cfg.intermediate_size:
        out.append(f"intermediate_size {cfg.intermediate_size} is not int(hidden_size x ratio) for any ratio")
    p = cfg.patch_size
    if not isinstance(p, int) and len(set(p)) != 1:
        out.append(f"patches of {tuple(p)} pixels; mmcore's are square")
    if cfg.num_channels not in (1, 3):
        out.append(f"{cfg.num_channels} input channels; mmcore's image tokenizer takes 1 or 3")
    return out


def from_vitmae(peer: nn.Module, processor: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Tensor], list[str]]:
    """(mmcore image-MAE config, embedder + encoder weights, notes) for a ViTMAE with no `differences`."""
    cfg = peer.config
    found = differences(cfg)
    if found:
        raise NoExactPeer("ViTMAE differs from mmcore's image encoder: " + "; ".join(found))
    vit = getattr(peer, "vit", peer)
    emb = vit.embeddings
    conv = emb.patch_embeddings.projection
    D, C, p = cfg.hidden_size, cfg.num_channels, conv.kernel_size[0]
    H, W = emb.patch_embeddings.image_size
    mean, std, notes = data_stats(processor, C)
    config = {
        "modality": "image", "style": "mae",
        "tokenizer": {"image_size": [int(H), int(W)], "patch_size": p, "channels": C, "mean": mean, "std": std,
                      "positions": "fixed"},
        "masking": {"name": "random", "ratio": float(cfg.mask_ratio)},
        "target": {"name": "pixels", "norm_pix": bool(cfg.norm_pix_loss)},
        "encoder": {"dim": D, "depth": cfg.num_hidden_layers, "heads": cfg.num_attention_heads,
                    "mlp_ratio": cfg.intermediate_size / D, "class_token": True, "norm_eps": cfg.layer_norm_eps},
        "decoder": {"dim": cfg.decoder_hidden_size, "depth": cfg.decoder_num_hidden_layers,
                    "heads": cfg.decoder_num_attention_heads,
                    "mlp_ratio": cfg.decoder_intermediate_size / cfg.decoder_hidden_size,
                    "norm_eps": cfg.layer_norm_eps},
    }
    d = lambda t: t.detach().clone()
    pos = d(emb.position_embeddings)
    state = {"embedder.proj.weight": d(conv.weight).permute(0, 2, 3, 1).reshape(D, p * p * C),
             "embedder.proj.bias": d(conv.bias), "embedder.pos_embed": pos[:, 1:],
             "encoder.cls_token": d(emb.cls_token) + pos[:, :1],  # its position row is a constant: folded in
             "encoder.norm.weight": d(vit.layernorm.weight), "encoder.norm.bias": d(vit.layernorm.bias)}
    for i, layer in enumerate(vit.layers):
        a, key = layer.attention, f"encoder.blocks.{i}."
        biases = [d(m.bias) if m.bias is not None else torch.zeros(D) for m in (a.q_proj, a.k_proj, a.v_proj)]
        state.update({
            key + "norm1.weight": d(layer.layernorm_before.weight), key + "norm1.bias": d(layer.layernorm_before.bias),
            key + "attn.qkv.weight": torch.cat([d(a.q_proj.weight), d(a.k_proj.weight), d(a.v_proj.weight)]),
            key + "attn.qkv.bias": torch.cat(biases),
            key + "attn.proj.weight": d(a.o_proj.weight), key + "attn.proj.bias": d(a.o_proj.bias),
            key + "norm2.weight": d(layer.layernorm_after.weight), key + "norm2.bias": d(layer.layernorm_after.bias),
            key + "mlp.0.weight": d(layer.mlp.fc1.weight), key + "mlp.0.bias": d(layer.mlp.fc1.bias),
            key + "mlp.2.weight": d(layer.mlp.fc2.weight), key + "mlp.2.bias": d(layer.mlp.fc2.bias),
        })
    decoder = getattr(peer, "decoder", None)
    if decoder is not None:
        state["embedder.decoder_pos_embed"] = d(decoder.decoder_pos_embed)[:, 1:]
    notes.append(f"decoder and pixel head freshly initialised with ViTMAE's shape: {DECODER_DIFFERS}")
    notes.append(f"positions are ViTMAE's fixed tables (tokenizer.positions: fixed) for the {H}x{W} size only")
    return config, state, notes


def data_stats(processor: dict[str, Any], channels: int) -> tuple[list[float] | None, list[float] | None, list[str]]:
    """(mean, std, notes) from an image processor config; none when it has none or does not normalise."""
    if not processor:
        return None, None, ["no preprocessor_config.json: images are taken as given (no mean/std normalisation)"]
    if not processor.get("do_normalize", True):
        return None, None, []
    mean, std = processor.get("image_mean"), processor.get("image_std")
    if isinstance(mean, (int, float)):
        mean = [mean] * channels
    if isinstance(std, (int, float)):
        std = [std] * channels
    return ([float(v) for v in mean] if mean else None), ([float(v) for v in std] if std else None), []


def peer_states(peer: nn.Module, images: Tensor, mean: list[float] | None, std: list[float] | None) -> Tensor:
    """ViTMAE's encoder outputs [B, N, D] at every patch, in patch order, for [0, 1] images normalised as
    mmcore's tokenizer does: no patch dropped (mask_ratio 0 for this call) and increasing noise keeps the order."""
    from mmcore.interop.timm_vit import normalise

    vit = getattr(peer, "vit", peer)
    images = normalise(images, mean, std)
    B, N = images.shape[0], vit.embeddings.patch_embeddings.num_patches
    ratio = vit.embeddings.config.mask_ratio
    vit.embeddings.config.mask_ratio = 0.0
    try:
        with torch.no_grad():
            out = vit(pixel_values=images, noise=torch.arange(N, dtype=torch.float32).expand(B, N))
    finally:
        vit.embeddings.config.mask_ratio = ratio
    return out.last_hidden_state[:, 1:]
