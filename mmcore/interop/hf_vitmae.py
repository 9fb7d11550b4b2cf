"""transformers' ``ViTMAEForPreTraining`` ↔ mmcore's image MAE, weight for weight, decoder included.

Why the encoders match: ViTMAE's layers are pre-norm with exact GELU like
mmcore's; only layouts differ: separate q/k/v become the fused qkv, the patch
conv becomes the (row, col, channel) linear, LayerNorm eps 1e-12 is
``encoder.norm_eps``, and its fixed sin-cos table, laid out column-first
(mmcore computes row-first), is loaded as a table (``tokenizer.positions:
fixed``); the class token carries its position row folded in.

Why the decoders match: ViTMAE's decoder reads the encoder's class-token
output as its first token (``decoder_embed`` applied, decoder position row 0
added); mmcore's does the same with ``model.decoder_reads_class_token``
(the row's position is the ``decoder_class_pos`` buffer), keeping outputs at
the hidden patches only: the class row is a key and value, never an output.
Mask tokens, the un-shuffled positions, the decoder blocks, ``decoder_norm``
and ``decoder_pred`` (patch pixels in (row, col, channel) order, as mmcore's
tokens) map one to one, and both losses are the MSE per hidden patch averaged
over hidden patches, with ``norm_pix_loss`` as mmcore's ``norm_pix`` (unbiased
variance + 1e-6).

Export writes the same mapping back (``to_vitmae``) for an image MAE that has
these options; whatever else ViTMAE cannot compute is refused by name
(`export_differences`).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from mmcore.errors import DataError, MMCoreError
from mmcore.interop.timm_vit import NoExactPeer
from mmcore.interop.transformers_folder import load_pretrained, quiet_transformers, read_config_json

KNOWN_OPTIONS = ("dim", "depth", "heads", "mlp_ratio", "class_token", "norm_eps")  # TransformerConfig fields mapped


def load_vitmae(folder: Path) -> tuple[nn.Module, dict[str, Any]]:
    """(the ViTMAE model a ``save_pretrained`` folder holds, loaded with every weight present; its
    preprocessor config, or {} when the folder has none)."""
    try:
        from transformers import ViTMAEForPreTraining, ViTMAEModel
    except ImportError:
        raise MMCoreError("transformers is not installed: pip install 'transformers>=4.40'") from None
    config = folder / "config.json"
    cfg = read_config_json(config)
    if not isinstance(cfg, dict) or cfg.get("model_type") != "vit_mae":
        kind = cfg.get("model_type") if isinstance(cfg, dict) else None
        raise NoExactPeer(f"{config}: model_type {kind!r}; mmcore imports transformers' ViTMAE only ('vit_mae')")
    cls = ViTMAEModel if cfg.get("architectures") == ["ViTMAEModel"] else ViTMAEForPreTraining
    peer, _ = load_pretrained(cls, folder)
    pre = folder / "preprocessor_config.json"
    try:
        processor = json.loads(pre.read_text(encoding="utf-8")) if pre.is_file() else {}
    except ValueError as exc:
        raise DataError(f"{pre}: not JSON ({exc})") from None
    return peer, processor


def differences(cfg: Any) -> list[str]:
    """What in a ViTMAE config mmcore's image encoder cannot reproduce exactly (empty: it can)."""
    out = []
    if cfg.hidden_act != "gelu":
        out.append(f"hidden_act {cfg.hidden_act!r}; mmcore's MLP uses exact GELU ('gelu')")
    head_dim = getattr(cfg, "head_dim", None)
    if head_dim is not None and head_dim * cfg.num_attention_heads != cfg.hidden_size:
        out.append(f"head_dim {head_dim} x {cfg.num_attention_heads} heads != hidden_size {cfg.hidden_size}")
    if head_dim is not None and head_dim * cfg.decoder_num_attention_heads != cfg.decoder_hidden_size:
        out.append(
            f"head_dim {head_dim} x {cfg.decoder_num_attention_heads} decoder heads != decoder_hidden_size {cfg.decoder_hidden_size}"
        )
    for size, inner in (("hidden_size", "intermediate_size"), ("decoder_hidden_size", "decoder_intermediate_size")):
        d, i = getattr(cfg, size), getattr(cfg, inner)
        if int(d * (i / d)) != i:
            out.append(f"{inner} {i} is not int({size} x ratio) for any ratio")
    p = cfg.patch_size
    if not isinstance(p, int) and len(set(p)) != 1:
        out.append(f"patches of {tuple(p)} pixels; mmcore's are square")
    if cfg.num_channels not in (1, 3):
        out.append(f"{cfg.num_channels} input channels; mmcore's image tokenizer takes 1 or 3")
    return out


def from_vitmae(peer: nn.Module, processor: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Tensor], list[str]]:
    """(mmcore image-MAE config, its weights, notes) for a ViTMAE with no `differences`: embedder and encoder,
    and for ``ViTMAEForPreTraining`` the decoder and pixel head too (``decoder_reads_class_token``)."""
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
        "modality": "image",
        "style": "mae",
        "tokenizer": {"image_size": [int(H), int(W)], "patch_size": p, "channels": C, "mean": mean, "std": std, "positions": "fixed"},
        "masking": {"name": "random", "ratio": float(cfg.mask_ratio)},
        "target": {"name": "pixels", "norm_pix": bool(cfg.norm_pix_loss)},
        "encoder": {
            "dim": D,
            "depth": cfg.num_hidden_layers,
            "heads": cfg.num_attention_heads,
            "mlp_ratio": cfg.intermediate_size / D,
            "class_token": True,
            "norm_eps": cfg.layer_norm_eps,
        },
        "decoder": {
            "dim": cfg.decoder_hidden_size,
            "depth": cfg.decoder_num_hidden_layers,
            "heads": cfg.decoder_num_attention_heads,
            "mlp_ratio": cfg.decoder_intermediate_size / cfg.decoder_hidden_size,
            "norm_eps": cfg.layer_norm_eps,
        },
    }
    d = lambda t: t.detach().clone()
    pos = d(emb.position_embeddings)
    state = {
        "embedder.proj.weight": d(conv.weight).permute(0, 2, 3, 1).reshape(D, p * p * C),
        "embedder.proj.bias": d(conv.bias),
        "embedder.pos_embed": pos[:, 1:],
        "encoder.cls_token": d(emb.cls_token) + pos[:, :1],  # its position row is a constant: folded in
        "encoder.norm.weight": d(vit.layernorm.weight),
        "encoder.norm.bias": d(vit.layernorm.bias),
    }
    for i, layer in enumerate(vit.layers):
        state.update(layer_state(layer, f"encoder.blocks.{i}.", D))
    config["decoder_reads_class_token"] = True  # ViTMAE's decoder reads the encoder's class-token output
    decoder = getattr(peer, "decoder", None)
    if decoder is None:  # ViTMAEModel: no decoder weights
        notes.append("decoder and pixel head freshly initialised with ViTMAE's shape (a ViTMAEModel folder has no decoder)")
    else:
        Dd = cfg.decoder_hidden_size
        dpos = d(decoder.decoder_pos_embed)
        state.update(
            {
                "embedder.decoder_pos_embed": dpos[:, 1:],
                "decoder_class_pos": dpos[:, :1],
                "decoder_embed.weight": d(decoder.decoder_embed.weight),
                "decoder_embed.bias": d(decoder.decoder_embed.bias),
                "mask_token": d(decoder.mask_token),
                "decoder.norm.weight": d(decoder.decoder_norm.weight),
                "decoder.norm.bias": d(decoder.decoder_norm.bias),
                "head.proj.weight": d(decoder.decoder_pred.weight),
                "head.proj.bias": d(decoder.decoder_pred.bias),
            }
        )
        for i, layer in enumerate(decoder.decoder_layers):
            state.update(layer_state(layer, f"decoder.blocks.{i}.", Dd))
        notes.append("decoder imported: it reads the encoder's class-token output as ViTMAE's does (model.decoder_reads_class_token)")
    notes.append(f"positions are ViTMAE's fixed tables (tokenizer.positions: fixed) for the {H}x{W} size only")
    return config, state, notes


LAYER_KEYS = {  # mmcore block parameter → ViTMAE layer parameter (q/k/v: the fused qkv, split)
    "norm1.weight": "layernorm_before.weight",
    "norm1.bias": "layernorm_before.bias",
    "attn.proj.weight": "attention.o_proj.weight",
    "attn.proj.bias": "attention.o_proj.bias",
    "norm2.weight": "layernorm_after.weight",
    "norm2.bias": "layernorm_after.bias",
    "mlp.0.weight": "mlp.fc1.weight",
    "mlp.0.bias": "mlp.fc1.bias",
    "mlp.2.weight": "mlp.fc2.weight",
    "mlp.2.bias": "mlp.fc2.bias",
}


def layer_state(layer: nn.Module, key: str, dim: int) -> dict[str, Tensor]:
    """One ViTMAE layer (encoder or decoder) as mmcore block weights under ``key`` (a missing qkv bias: zeros)."""
    theirs = {k: v.detach().clone() for k, v in layer.state_dict().items()}
    out = {key + ours: theirs[peer] for ours, peer in LAYER_KEYS.items()}
    out[key + "attn.qkv.weight"] = torch.cat([theirs[f"attention.{n}_proj.weight"] for n in "qkv"])
    out[key + "attn.qkv.bias"] = torch.cat([theirs.get(f"attention.{n}_proj.bias", torch.zeros(dim)) for n in "qkv"])
    return out


def peer_layer(ours: dict[str, Tensor], key: str, prefix: str, dim: int) -> dict[str, Tensor]:
    """`layer_state` reversed: mmcore block ``key`` as ViTMAE layer weights under ``prefix``."""
    out = {prefix + peer: ours[key + mine] for mine, peer in LAYER_KEYS.items()}
    w, b = ours[key + "attn.qkv.weight"], ours[key + "attn.qkv.bias"]
    for i, n in enumerate("qkv"):
        out[f"{prefix}attention.{n}_proj.weight"] = w[i * dim : (i + 1) * dim]
        out[f"{prefix}attention.{n}_proj.bias"] = b[i * dim : (i + 1) * dim]
    return out


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


# -- mmcore → transformers -----------------------------------------------------------


def export_differences(model: Any) -> list[str]:
    """What in an mmcore image model ``ViTMAEForPreTraining`` cannot compute exactly (empty: it can)."""
    from mmcore.continuous import PatchEmbedder, PatchTarget, RegressionHead

    if model.style != "mae":
        return [f"style {model.style!r}; ViTMAEForPreTraining is an MAE (model.style: mae)"]
    out = []
    emb, tok = model.embedder, model.tokenizer
    if (
        not isinstance(emb, PatchEmbedder)
        or type(emb).forward is not PatchEmbedder.forward
        or type(emb).decoder_positions is not PatchEmbedder.decoder_positions
    ):
        out.append(
            f"the image embedder {type(emb).__name__} is not mmcore's linear patch embedder with sin-cos or "
            "table positions, which ViTMAE's patch conv + position tables reproduce"
        )
    H, W = tok.image_size
    if H != W:
        out.append(f"images of {H}x{W} pixels; ViTMAE's are square (tokenizer.image_size [S, S])")
    enc, dec = model.encoder.config, model.decoder.config
    if not enc.class_token:
        out.append("encoder.class_token is false; ViTMAE's encoder prepends a class token (model.encoder.class_token: true)")
    elif not model.decoder_reads_class_token:
        out.append(
            "decoder_reads_class_token is false; ViTMAE's decoder reads the encoder's class-token output as "
            "its first token (model.decoder_reads_class_token: true)"
        )
    if dec.class_token:
        out.append("decoder.class_token is true; ViTMAE's decoder has no class token of its own")
    if enc.norm_eps != dec.norm_eps:
        out.append(f"encoder.norm_eps {enc.norm_eps} and decoder.norm_eps {dec.norm_eps} differ; ViTMAE has one layer_norm_eps for both")
    for part, cfg in (("encoder", enc), ("decoder", dec)):
        for f in dataclasses.fields(cfg):
            value = getattr(cfg, f.name)
            if f.name not in KNOWN_OPTIONS and value != f.default:
                out.append(f"{part}.{f.name} is {value!r}; ViTMAE's layers have no such option (accepted: {f.default!r})")
    if not isinstance(model.target, PatchTarget) or model.config["target"].get("name") != "pixels":
        out.append(f"target {model.config['target'].get('name')!r}; ViTMAE predicts pixels (target.name: pixels)")
    head = model.head
    if (
        not isinstance(head, RegressionHead)
        or type(head).forward is not RegressionHead.forward
        or type(head).loss is not RegressionHead.loss
        or model._scorer() is not head
    ):
        out.append(
            f"the head {type(head).__name__} is not mmcore's linear pixel head scored by MSE, which ViTMAE's decoder_pred and loss are"
        )
    if not isinstance(getattr(model.policy, "ratio", None), float):
        out.append(f"masking {model.config['masking'].get('name')!r} has no ratio; ViTMAE hides mask_ratio of the patches")
    return out


def to_vitmae(model: Any) -> tuple[nn.Module, dict[str, Any]]:
    """A ``ViTMAEForPreTraining`` holding ``model``'s weights, and its image processor's options."""
    found = export_differences(model)
    if found:
        raise NoExactPeer("no exact transformers ViTMAEForPreTraining for this model: " + "; ".join(found))
    try:
        from transformers import ViTMAEConfig, ViTMAEForPreTraining
    except ImportError:
        raise MMCoreError("transformers is not installed: pip install 'transformers>=4.40'") from None
    from mmcore.continuous import sincos
    from mmcore.interop.timm_vit import grid_positions, position_table

    tok, emb, enc, dec = model.tokenizer, model.embedder, model.encoder.config, model.decoder.config
    p, C, (S, _), D, Dd = tok.patch_size, tok.channels, tok.image_size, enc.dim, dec.dim
    cfg = ViTMAEConfig(
        image_size=S,
        patch_size=p,
        num_channels=C,
        hidden_size=D,
        num_hidden_layers=enc.depth,
        num_attention_heads=enc.heads,
        intermediate_size=int(D * enc.mlp_ratio),
        hidden_act="gelu",
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        layer_norm_eps=enc.norm_eps,
        qkv_bias=True,
        decoder_hidden_size=Dd,
        decoder_num_hidden_layers=dec.depth,
        decoder_num_attention_heads=dec.heads,
        decoder_intermediate_size=int(Dd * dec.mlp_ratio),
        mask_ratio=float(model.policy.ratio),
        norm_pix_loss=bool(model.target.norm_pix),
    )
    with torch.random.fork_rng(devices=[]):  # its random init is overwritten: leave the caller's generator alone
        peer = ViTMAEForPreTraining(cfg)
    ours = {k: v.detach() for k, v in model.state_dict().items()}
    dtable = emb.decoder_pos_embed.detach() if emb.positions != "sincos" else sincos(grid_positions(*tok.grid), Dd)
    state = {
        "vit.embeddings.cls_token": ours["encoder.cls_token"],  # its position folded in: row 0 of the table is 0
        "vit.embeddings.position_embeddings": torch.cat([torch.zeros(1, 1, D), position_table(model)], dim=1),
        "vit.embeddings.patch_embeddings.projection.weight": ours["embedder.proj.weight"].reshape(D, p, p, C).permute(0, 3, 1, 2),
        "vit.embeddings.patch_embeddings.projection.bias": ours["embedder.proj.bias"],
        "vit.layernorm.weight": ours["encoder.norm.weight"],
        "vit.layernorm.bias": ours["encoder.norm.bias"],
        "decoder.decoder_embed.weight": ours["decoder_embed.weight"],
        "decoder.decoder_embed.bias": ours["decoder_embed.bias"],
        "decoder.mask_token": ours["mask_token"],
        "decoder.decoder_pos_embed": torch.cat([ours["decoder_class_pos"], dtable], dim=1),
        "decoder.decoder_norm.weight": ours["decoder.norm.weight"],
        "decoder.decoder_norm.bias": ours["decoder.norm.bias"],
        "decoder.decoder_pred.weight": ours["head.proj.weight"],
        "decoder.decoder_pred.bias": ours["head.proj.bias"],
    }
    for i in range(enc.depth):
        state.update(peer_layer(ours, f"encoder.blocks.{i}.", f"vit.layers.{i}.", D))
    for i in range(dec.depth):
        state.update(peer_layer(ours, f"decoder.blocks.{i}.", f"decoder.decoder_layers.{i}.", Dd))
    peer.load_state_dict({k: v.float().contiguous() for k, v in state.items()}, strict=True)
    normalises = tok.mean is not None or tok.std is not None
    processor = {
        "do_resize": True,
        "size": {"height": S, "width": S},
        "do_rescale": True,
        "do_normalize": normalises,
        "image_mean": list(tok.mean or [0.0] * C),
        "image_std": list(tok.std or [1.0] * C),
    }
    return peer, processor


def save_vitmae(peer: nn.Module, processor: dict[str, Any], folder: Path) -> None:
    """transformers' own folder (config.json, model.safetensors, preprocessor_config.json): what
    ``ViTMAEForPreTraining.from_pretrained`` and ``AutoImageProcessor.from_pretrained`` read."""
    from transformers import ViTImageProcessor

    with quiet_transformers():
        peer.save_pretrained(str(folder), safe_serialization=True)
        ViTImageProcessor(**processor).save_pretrained(str(folder))


def decoder_difference(model: Any, peer: nn.Module, batch: int = 2) -> float:
    """Max abs difference of the predicted pixels at hidden patches and of the loss, for seeded random [0, 1]
    images and one random mask given to both (ViTMAE's ``noise``); 0 for a peer without a decoder (ViTMAEModel).
    Refused above the commands' tolerance."""
    from mmcore.interop import TOLERANCE
    from mmcore.interop.timm_vit import normalise

    if getattr(peer, "decoder", None) is None:
        return 0.0
    tok = model.tokenizer
    N = tok.grid[0] * tok.grid[1]
    K = model.policy.num_hidden(N)
    if K == 0:
        return 0.0  # nothing hidden, nothing predicted
    g = torch.Generator().manual_seed(0)
    images = torch.rand(batch, tok.channels, *tok.image_size, generator=g)
    noise = torch.rand(batch, N, generator=g)
    config = peer.vit.embeddings.config
    ratio = config.mask_ratio
    config.mask_ratio = (K - 0.5) / N  # ViTMAE keeps int(N (1 - ratio)) = N - K: as many hidden as mmcore predicts
    try:
        with torch.no_grad():
            theirs = peer(pixel_values=normalise(images, tok.mean, tok.std), noise=noise)
            ours = model({"images": images}, hidden=theirs.mask.bool())
    finally:
        config.mask_ratio = ratio
    pixels = theirs.logits.gather(1, ours.index[..., None].expand(-1, -1, theirs.logits.shape[-1]))
    diff = max((ours.pred - pixels).abs().max().item(), abs(ours.loss.item() - theirs.loss.item()))
    if not diff <= TOLERANCE:
        raise NoExactPeer(
            f"the converted decoders disagree: max abs difference {diff:.3g} in the predicted pixels "
            f"or loss on random images (accepted: <= {TOLERANCE}); nothing written"
        )
    return diff


def export_vitmae(model: Any, output: Any) -> tuple[Path, float]:
    """``mm export MODEL --to transformers``: the folder, and the max abs difference of encoder states, predicted
    pixels and loss (checked on random images before anything is written)."""
    from mmcore.interop import encoder_difference, free_output, write_atomic

    out = free_output(output)
    peer, processor = to_vitmae(model)
    tok = model.tokenizer
    diff = encoder_difference(model, lambda x: peer_states(peer, x, tok.mean, tok.std))
    diff = max(diff, decoder_difference(model, peer))
    write_atomic(out, lambda tmp: save_vitmae(peer, processor, tmp))
    return out, diff
