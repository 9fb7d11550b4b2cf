"""mmcore's image encoder ↔ timm's ``VisionTransformer``, weight for weight.

Why the two can match exactly: both are pre-norm ViTs with a fused qkv
projection, exact GELU and LayerNorm, so only layouts differ. mmcore flattens
a patch as (row, col, channel) for a linear layer where timm convolves
[D, C, p, p]; timm's ``pos_embed`` table is mmcore's sin-cos (computed) when
its values are those, else a learned table (``tokenizer.positions: learned``);
timm's class token (``encoder.class_token`` here) carries its position folded
in. timm's layer scale is folded into the projection before it. What cannot be
folded (registers, qk-norm, a norm after pooling, other activations) is refused
by name, never converted approximately.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from mmcore.continuous import PatchEmbedder, sincos
from mmcore.errors import DataError, MMCoreError

ARCHITECTURE = "vit_base_patch16_224"  # a registered name; model_args set every size, so any ViT fits
POSITION_ATOL = 1e-6  # a stored sin-cos table may have been computed in float64 first


class NoExactPeer(MMCoreError):
    """The model and the peer differ in something weights cannot carry; the message names it."""


def timm_module():
    try:
        import timm
    except ImportError:
        raise MMCoreError("timm is not installed: pip install 'timm>=1.0'") from None
    return timm


# -- mmcore → timm -----------------------------------------------------------------

def check_exportable(model: Any) -> None:
    """What an mmcore model must be to have an exact timm ``VisionTransformer`` (one-line NoExactPeer else)."""
    if getattr(model, "config", {}).get("modality") != "image":
        raise NoExactPeer(f"no exact timm peer for modality {model.config.get('modality')!r} yet: only the image "
                          "encoder maps onto timm's VisionTransformer")
    embedder = model.embedder
    if type(embedder).forward is not PatchEmbedder.forward or not isinstance(embedder, PatchEmbedder):
        raise NoExactPeer(f"the image embedder {type(embedder).__name__} is not mmcore's linear patch embedder "
                          "with sin-cos or table positions, which timm's PatchEmbed + pos_embed reproduce")
    enc = model.encoder.config
    if enc.norm_eps != 1e-6:
        raise NoExactPeer(f"encoder.norm_eps is {enc.norm_eps}; timm's VisionTransformer config names its "
                          "LayerNorm only at eps 1e-6")


def to_timm(model: Any) -> tuple[nn.Module, dict[str, Any]]:
    """A timm VisionTransformer holding ``model``'s encoder, and the data config (size, mean, std) it expects.

    ``global_pool='avg'`` and ``fc_norm=False``: timm's pooled output is then mmcore's ``features``
    (mean of the normed patch states); ``num_classes=0``: no classifier."""
    check_exportable(model)
    timm = timm_module()
    tok, enc = model.tokenizer, model.encoder.config
    H, W = tok.image_size
    args = {"img_size": [H, W], "patch_size": tok.patch_size, "in_chans": tok.channels, "embed_dim": enc.dim,
            "depth": enc.depth, "num_heads": enc.heads, "mlp_ratio": enc.mlp_ratio, "qkv_bias": True,
            "class_token": enc.class_token, "no_embed_class": True, "global_pool": "avg", "fc_norm": False,
            "num_classes": 0}
    peer = timm.create_model(ARCHITECTURE, pretrained=False, **args)
    ours = model.state_dict()
    p, C, D = tok.patch_size, tok.channels, enc.dim
    state = {
        "patch_embed.proj.weight": ours["embedder.proj.weight"].reshape(D, p, p, C).permute(0, 3, 1, 2),
        "patch_embed.proj.bias": ours["embedder.proj.bias"],
        "pos_embed": position_table(model),
        "norm.weight": ours["encoder.norm.weight"], "norm.bias": ours["encoder.norm.bias"],
    }
    if enc.class_token:
        state["cls_token"] = ours["encoder.cls_token"]
    for ours_key, peer_key in BLOCK_KEYS.items():
        for i in range(enc.depth):
            state[f"blocks.{i}.{peer_key}"] = ours[f"encoder.blocks.{i}.{ours_key}"]
    peer.load_state_dict({k: v.contiguous() for k, v in state.items()}, strict=True)
    data = {"input_size": (C, H, W), "mean": tuple(tok.mean or [0.0] * C), "std": tuple(tok.std or [1.0] * C),
            "crop_pct": 1.0}
    return peer.eval(), data


BLOCK_KEYS = {  # mmcore block parameter → timm block parameter
    "norm1.weight": "norm1.weight", "norm1.bias": "norm1.bias",
    "attn.qkv.weight": "attn.qkv.weight", "attn.qkv.bias": "attn.qkv.bias",
    "attn.proj.weight": "attn.proj.weight", "attn.proj.bias": "attn.proj.bias",
    "norm2.weight": "norm2.weight", "norm2.bias": "norm2.bias",
    "mlp.0.weight": "mlp.fc1.weight", "mlp.0.bias": "mlp.fc1.bias",
    "mlp.2.weight": "mlp.fc2.weight", "mlp.2.bias": "mlp.fc2.bias",
}


def position_table(model: Any) -> Tensor:
    """[1, N, D] the encoder's patch positions at the trained size: its table, or the sin-cos it computes."""
    embedder, tok = model.embedder, model.tokenizer
    if embedder.positions != "sincos":
        return embedder.pos_embed.detach()
    return sincos(grid_positions(*tok.grid), embedder.dim)


def grid_positions(h: int, w: int) -> Tensor:
    """[1, h*w, 2] (row, col) of each patch, row-major: the image tokenizer's positions."""
    rows, cols = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32),
                                indexing="ij")
    return torch.stack([rows, cols], dim=-1).reshape(1, h * w, 2)


def save_timm(peer: nn.Module, data: dict[str, Any], folder: Path) -> None:
    """timm's own folder format (``save_for_hf``: config.json + model.safetensors), which
    ``timm.create_model("local-dir:FOLDER", pretrained=True)`` and ``hf-hub:`` read."""
    from timm.models import save_for_hf

    save_for_hf(peer, str(folder), safe_serialization=True, data_config=data)


# -- timm → mmcore -----------------------------------------------------------------

def load_timm(folder: Path) -> tuple[nn.Module, dict[str, Any]]:
    """The timm model a folder holds, its weights checked and loaded strictly, and its pretrained_cfg."""
    timm = timm_module()
    from safetensors import SafetensorError
    from safetensors.torch import load_file
    from timm.models._hub import load_model_config_from_path

    config, weights = folder / "config.json", folder / "model.safetensors"
    if not config.is_file():
        raise DataError(f"{folder}: no config.json; accepted: a timm folder (config.json with 'architecture', "
                        "model.safetensors) as timm's save_for_hf or mm export --to timm writes")
    try:
        architecture = json.loads(config.read_text(encoding="utf-8"))["architecture"]
        cfg, name, args = load_model_config_from_path(folder)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{config}: not a timm config ({type(exc).__name__}: {exc}); accepted: a JSON object "
                        "with 'architecture' and 'pretrained_cfg', as timm writes") from None
    if not weights.is_file():
        raise DataError(f"{folder}: no model.safetensors; accepted: timm weights as safetensors "
                        "(pickled pytorch_model.bin is never read)")
    try:
        peer = timm.create_model(name, pretrained=False, **args)
    except (RuntimeError, TypeError, ValueError, AssertionError) as exc:
        raise DataError(f"{config}: timm cannot build architecture {architecture!r} with model_args {args}: "
                        f"{' '.join(str(exc).split())[:200]}") from None
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError) as exc:
        raise DataError(f"cannot read weights {weights}: {exc}; expected an intact safetensors file") from None
    expected = peer.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [f"{k} {list(state[k].shape)} (expected {list(v.shape)})" for k, v in expected.items()
              if k in state and state[k].shape != v.shape]
    if missing or unexpected or shapes:
        raise DataError(f"weights {weights} do not match timm's {architecture!r}: missing {missing[:5]}, "
                        f"unexpected {unexpected[:5]}, wrong shapes {shapes[:3]}")
    peer.load_state_dict(state, strict=True)
    return peer.eval(), cfg


def differences(peer: nn.Module) -> list[str]:
    """What in a timm model mmcore's image encoder cannot reproduce exactly (empty: it can)."""
    from timm.layers import Attention, LayerScale, Mlp, PatchEmbed
    from timm.models.vision_transformer import Block, VisionTransformer

    if not isinstance(peer, VisionTransformer):
        return [f"it is a {type(peer).__name__}, not a VisionTransformer"]
    out = []
    if peer.num_reg_tokens:
        out.append(f"{peer.num_reg_tokens} register tokens (reg_tokens); mmcore has at most a class token")
    if peer.pos_embed is None:
        out.append("no position embedding (pos_embed='none'); mmcore adds 2-D sin-cos positions")
    if not isinstance(peer.norm_pre, nn.Identity):
        out.append("a norm before the blocks (pre_norm)")
    if not isinstance(peer.norm, nn.LayerNorm):
        out.append("the final norm is applied after pooling (fc_norm) or not at all (final_norm=False); mmcore "
                   "normalises every token before pooling")
    pe = peer.patch_embed
    conv = getattr(pe, "proj", None)
    if type(pe) is not PatchEmbed or not isinstance(conv, nn.Conv2d) or conv.kernel_size != conv.stride \
            or conv.padding != (0, 0) or not isinstance(pe.norm, nn.Identity) or pe.dynamic_img_pad or not pe.flatten:
        out.append("its patch embedding is not one non-overlapping convolution (a norm, padding or overlap)")
    elif conv.kernel_size[0] != conv.kernel_size[1]:
        out.append(f"patches of {tuple(conv.kernel_size)} pixels; mmcore's are square")
    elif conv.in_channels not in (1, 3):
        out.append(f"{conv.in_channels} input channels; mmcore's image tokenizer takes 1 or 3")
    norms = [m for m in peer.modules() if isinstance(m, nn.LayerNorm)]
    if len({m.eps for m in norms}) > 1:
        out.append(f"LayerNorms with different eps {sorted({m.eps for m in norms})}; mmcore has one norm_eps")
    for i, block in enumerate(peer.blocks):
        where = f"block {i}"
        if type(block) is not Block:
            out.append(f"{where} is a {type(block).__name__}, not timm's pre-norm Block")
            break
        attn, mlp = block.attn, block.mlp
        if type(attn) is not Attention or attn.qkv.out_features != 3 * peer.embed_dim:
            out.append(f"{where}'s attention is not one fused qkv of width 3 x embed_dim")
        elif not all(isinstance(m, nn.Identity) for m in (attn.q_norm, attn.k_norm, attn.norm)):
            out.append(f"{where} normalises queries/keys or attention outputs (qk_norm, scale_attn_norm)")
        if type(mlp) is not Mlp or not isinstance(mlp.norm, nn.Identity) or type(mlp.act) is not nn.GELU \
                or mlp.act.approximate != "none":
            out.append(f"{where}'s MLP is not Linear-GELU(exact)-Linear ({type(mlp).__name__} with "
                       f"{type(getattr(mlp, 'act', None)).__name__}); mmcore's uses exact GELU")
        if any(not isinstance(m, (nn.Identity, LayerScale)) for m in (block.ls1, block.ls2)):
            out.append(f"{where} has a layer scale of its own kind")
        if not (isinstance(block.norm1, nn.LayerNorm) and isinstance(block.norm2, nn.LayerNorm)):
            out.append(f"{where} uses {type(block.norm1).__name__}, not LayerNorm")
        if out:
            break
    if not out and peer.blocks and int(peer.embed_dim * mlp_ratio_of(peer)) != peer.blocks[0].mlp.fc1.out_features:
        out.append(f"MLP width {peer.blocks[0].mlp.fc1.out_features} is not int(dim x ratio) for any ratio")
    return out


def is_sincos(peer: nn.Module) -> bool:
    """Whether timm's patch positions are mmcore's 2-D sin-cos values (then mmcore computes them)."""
    grid = peer.patch_embed.grid_size
    if peer.embed_dim % 4:
        return False
    diff = (patch_positions(peer) - sincos(grid_positions(*grid), peer.embed_dim)).abs().max()
    return bool(diff <= POSITION_ATOL)


def mlp_ratio_of(peer: nn.Module) -> float:
    return peer.blocks[0].mlp.fc1.out_features / peer.embed_dim


def patch_positions(peer: nn.Module) -> Tensor:
    """[1, N, D] position rows of the patches (the prefix tokens' rows left out)."""
    pos = peer.pos_embed.detach()
    return pos if peer.no_embed_class else pos[:, peer.num_prefix_tokens:]


def from_timm(peer: nn.Module, cfg: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Tensor], list[str]]:
    """(mmcore image-MAE config, encoder and embedder weights, notes) for a timm ViT with no `differences`."""
    found = differences(peer)
    if found:
        raise NoExactPeer("timm model differs from mmcore's image encoder: " + "; ".join(found))
    conv = peer.patch_embed.proj
    D, C, p = peer.embed_dim, conv.in_channels, conv.kernel_size[0]
    H, W = (g * p for g in peer.patch_embed.grid_size)
    mean, std = [float(v) for v in cfg.get("mean", [0.0] * C)], [float(v) for v in cfg.get("std", [1.0] * C)]
    plain = mean == [0.0] * C and std == [1.0] * C
    depth = len(peer.blocks)
    eps = peer.norm.eps
    sincos_positions = is_sincos(peer)
    config = {
        "modality": "image", "style": "mae",
        "tokenizer": {"image_size": [H, W], "patch_size": p, "channels": C,
                      "mean": None if plain else mean, "std": None if plain else std,
                      "positions": "sincos" if sincos_positions else "learned"},
        "masking": {"name": "random"}, "target": {"name": "pixels"},
        "encoder": {"dim": D, "depth": depth, "heads": peer.blocks[0].attn.num_heads if depth else 1,
                    "mlp_ratio": mlp_ratio_of(peer) if depth else 4.0, "class_token": peer.has_class_token,
                    "norm_eps": eps},
    }
    src = {k: v.detach() for k, v in peer.state_dict().items()}
    state = {"embedder.proj.weight": conv.weight.detach().permute(0, 2, 3, 1).reshape(D, p * p * C),
             "embedder.proj.bias": src.get("patch_embed.proj.bias", torch.zeros(D)),
             "encoder.norm.weight": src["norm.weight"], "encoder.norm.bias": src["norm.bias"]}
    if not sincos_positions:
        state["embedder.pos_embed"] = patch_positions(peer)
    if peer.has_class_token:  # its position row is a constant: folded into the token
        cls = src["cls_token"]
        state["encoder.cls_token"] = cls if peer.no_embed_class else cls + src["pos_embed"][:, :1]
    for i in range(len(peer.blocks)):
        for ours, theirs in BLOCK_KEYS.items():
            value = src.get(f"blocks.{i}.{theirs}")
            if value is None:  # a bias the peer was built without (qkv_bias=False): zeros are the same layer
                value = torch.zeros(state[f"encoder.blocks.{i}.{ours.replace('.bias', '.weight')}"].shape[0])
            state[f"encoder.blocks.{i}.{ours}"] = value
        for ls, linear in (("ls1", "attn.proj"), ("ls2", "mlp.2")):  # x + g * (W h + b) = x + (g W) h + g b
            gamma = src.get(f"blocks.{i}.{ls}.gamma")
            if gamma is not None:
                state[f"encoder.blocks.{i}.{linear}.weight"] = gamma[:, None] * state[f"encoder.blocks.{i}.{linear}.weight"]
                state[f"encoder.blocks.{i}.{linear}.bias"] = gamma * state[f"encoder.blocks.{i}.{linear}.bias"]
    notes = ["decoder and pixel head freshly initialised (timm holds an encoder only)"]
    if not sincos_positions:
        notes.append("learned positions (tokenizer.positions: learned) cover the trained grid "
                     f"{tuple(peer.patch_embed.grid_size)} only; decoder positions start at sin-cos values")
    if peer.num_classes:
        notes.append(f"classifier head ({peer.num_classes} classes) left out")
    if peer.global_pool == "token":
        notes.append("timm pools the class token (global_pool='token'); mmcore's features average the patch tokens")
    return config, state, notes


def peer_states(peer: nn.Module, images: Tensor, mean: list[float] | None, std: list[float] | None) -> Tensor:
    """timm's patch-token outputs [B, N, D] for [0, 1] images, normalised as its data config says."""
    with torch.no_grad():
        return peer.forward_features(normalise(images, mean, std))[:, peer.num_prefix_tokens:]


def normalise(images: Tensor, mean: list[float] | None, std: list[float] | None) -> Tensor:
    """[B, C, H, W] images less ``mean`` over ``std`` per channel (as given when both are None)."""
    if mean is None and std is None:
        return images
    C = images.shape[1]
    m = images.new_tensor(mean or [0.0] * C).view(1, -1, 1, 1)
    s = images.new_tensor(std or [1.0] * C).view(1, -1, 1, 1)
    return (images - m) / s
