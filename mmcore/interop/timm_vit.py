"""mmcore's image, audio and video encoders ↔ timm's ``VisionTransformer``, weight for weight.

Why the two can match exactly: both are pre-norm ViTs with a fused qkv
projection, exact GELU and LayerNorm, so only layouts differ. mmcore flattens
a patch as (row, col, channel) for a linear layer where timm convolves
[D, C, p, p]; timm's ``pos_embed`` table is mmcore's sin-cos (computed) when
its values are those, else a learned table (``tokenizer.positions: learned``);
timm's class token (``encoder.class_token`` here) carries its position folded
in. timm's layer scale is folded into the projection before it. What cannot be
folded (registers, qk-norm, a norm after pooling, other activations) is refused
by name, never converted approximately.

Audio and video reach the same 2-D ViT through a `Layout`, a reshape of the
batch: a log-mel crop [B, T, F] (the audio tokenizer's ``fbank``) is timm's
one-channel image [B, 1, T, F], time as height as in AudioMAE, its [pt, pf]
patches time-major as the tokenizer cuts them; a clip [B, C, T, H, W] whose
one tubelet spans all T frames is timm's [B, C*T, H, W] (frames as channels,
channel-major). Tubelets that split a clip in time need a third patch axis,
which timm's Conv2d patch embedding lacks: refused. What a timm model cannot
hold (the modality, the filterbank settings, a video's channels) travels as a
top-level ``mmcore`` entry of config.json, which timm ignores and import reads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from mmcore.continuous import PatchEmbedder, sincos
from mmcore.errors import DataError, MMCoreError

ARCHITECTURE = "vit_base_patch16_224"  # a registered name; model_args set every size, so any ViT fits
POSITION_ATOL = 1e-6  # a stored sin-cos table may have been computed in float64 first


RECORD = "mmcore"  # config.json's top-level entry for what timm does not hold (written for audio and video)
SPLIT_TUBELETS = (
    "timm's VisionTransformer has one 2-D patch grid (a Conv2d patch embedding), so only a tubelet "
    "spanning every frame maps onto it (frames as input channels: model.tokenizer.tubelet_size[0] = "
    "num_frames); the natural peer, transformers' VideoMAEModel (Conv3d tubelets), is not mapped yet"
)


class NoExactPeer(MMCoreError):
    """The model and the peer differ in something weights cannot carry; the message names it."""


@dataclass(frozen=True)
class Layout:
    """How one modality's batch is timm's [B, in_chans, H, W] input and its patch projection timm's conv.

    mmcore flattens a patch as (frame, row, col, channel) (one frame for images and spectrograms);
    timm's input channels are (channel, frame), channel-major. ``mean``/``std`` are per timm channel."""

    modality: str
    key: str  # the mmcore batch entry: images, fbank, clips
    img_size: tuple[int, int]  # timm's (H, W): (target_frames, num_mel_bins) for audio
    patch: tuple[int, int]
    channels: int  # mmcore's (1 for a spectrogram)
    frames: int  # frames folded into timm's channels (video); 1 otherwise
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def in_chans(self) -> int:
        return self.channels * self.frames

    @property
    def grid(self) -> tuple[int, int]:
        return self.img_size[0] // self.patch[0], self.img_size[1] // self.patch[1]

    def positions(self) -> Tensor:
        """[1, N, A] the tokenizer's coordinates of each patch, in timm's (row-major) order."""
        pos = grid_positions(*self.grid)  # (row, col); audio: (time, frequency)
        if self.modality == "video":  # (t, row, col) with t = 0: one tubelet step
            pos = torch.cat([pos.new_zeros(1, pos.shape[1], 1), pos], dim=-1)
        return pos

    def image(self, x: Tensor) -> Tensor:
        """The mmcore batch tensor as timm's [B, in_chans, H, W], not yet normalised."""
        if self.modality == "audio":  # [B, T, F] → [B, 1, T, F]
            return x.to(torch.float32)[:, None]
        if self.modality == "video":  # [B, C, T, H, W] (uint8 or [0, 1]) → [B, C*T, H, W]
            return (x.to(torch.float32) / 255.0 if x.dtype == torch.uint8 else x).flatten(1, 2)
        return x

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        """Seeded random inputs of the trained size, as the tokenizer takes them."""
        H, W = self.img_size
        if self.modality == "audio":  # log-mel-like values: normalised, they are unit normal
            return torch.randn(n, H, W, generator=generator) * self.std[0] + self.mean[0]
        if self.modality == "video":
            return torch.rand(n, self.channels, self.frames, H, W, generator=generator)
        return torch.rand(n, self.channels, H, W, generator=generator)

    def conv_weight(self, proj: Tensor) -> Tensor:
        """mmcore's [D, frames*ph*pw*C] patch projection → timm's conv weight [D, C*frames, ph, pw]."""
        D, (ph, pw) = proj.shape[0], self.patch
        return proj.reshape(D, self.frames, ph, pw, self.channels).permute(0, 4, 1, 2, 3).reshape(D, -1, ph, pw)

    def proj_weight(self, conv: Tensor) -> Tensor:
        """timm's conv weight → mmcore's patch projection (`conv_weight` reversed)."""
        D, (ph, pw) = conv.shape[0], self.patch
        return conv.reshape(D, self.channels, self.frames, ph, pw).permute(0, 2, 3, 4, 1).reshape(D, -1)


def layout_of(model: Any) -> Layout:
    """The model's `Layout` onto timm's ViT (one-line NoExactPeer where none is exact)."""
    modality, tok = model.config.get("modality"), model.tokenizer
    if modality == "image":
        C, p = tok.channels, tok.patch_size
        return Layout("image", "images", tuple(tok.image_size), (p, p), C, 1, tuple(tok.mean or [0.0] * C), tuple(tok.std or [1.0] * C))
    if modality == "audio":  # the tokenizer normalises only when it has a mean (std alone is unused)
        plain = tok.mean is None
        return Layout(
            "audio",
            "fbank",
            (tok.target_frames, tok.num_mel_bins),
            tuple(tok.patch_size),
            1,
            1,
            (0.0 if plain else float(tok.mean),),
            (1.0 if plain else float(tok.std or 1.0),),
        )
    if modality == "video":
        pt, ph, pw = tok.tubelet_size
        T, C = tok.num_frames, tok.channels
        if pt != T:
            raise NoExactPeer(
                f"no exact timm peer for this video model: tubelet_size {list(tok.tubelet_size)} splits "
                f"its {T} frames into {T // pt} steps along time, and {SPLIT_TUBELETS}"
            )
        mean, std = tok.mean or [0.0] * C, tok.std or [1.0] * C
        return Layout(
            "video",
            "clips",
            tuple(tok.image_size),
            (ph, pw),
            C,
            T,
            tuple(float(m) for m in mean for _ in range(T)),
            tuple(float(s) for s in std for _ in range(T)),
        )
    raise NoExactPeer(
        f"no exact timm peer for modality {modality!r} yet: only image, audio and video encoders map onto timm's VisionTransformer"
    )


def timm_module():
    try:
        import timm
    except ImportError:
        raise MMCoreError("timm is not installed: pip install 'timm>=1.0'") from None
    return timm


# -- mmcore → timm -----------------------------------------------------------------


def check_exportable(model: Any) -> Layout:
    """What an mmcore model must be to have an exact timm ``VisionTransformer`` (one-line NoExactPeer else)."""
    layout = layout_of(model)
    embedder = model.embedder
    if type(embedder).forward is not PatchEmbedder.forward or not isinstance(embedder, PatchEmbedder):
        raise NoExactPeer(
            f"the {layout.modality} embedder {type(embedder).__name__} is not mmcore's linear patch embedder "
            "with sin-cos or table positions, which timm's PatchEmbed + pos_embed reproduce"
        )
    enc = model.encoder.config
    if getattr(enc, "norm_placement", "pre") != "pre":
        raise NoExactPeer(
            f"encoder.norm_placement is {enc.norm_placement!r}; timm's VisionTransformer blocks are pre-norm with a final norm"
        )
    if enc.norm_eps != 1e-6:
        raise NoExactPeer(f"encoder.norm_eps is {enc.norm_eps}; timm's VisionTransformer config names its LayerNorm only at eps 1e-6")
    return layout


def to_timm(model: Any) -> tuple[nn.Module, dict[str, Any]]:
    """A timm VisionTransformer holding ``model``'s encoder, and the data config (size, mean, std) it expects.

    ``global_pool='avg'`` and ``fc_norm=False``: timm's pooled output is then mmcore's ``features``
    (mean of the normed patch states); ``num_classes=0``: no classifier."""
    layout = check_exportable(model)
    timm = timm_module()
    enc = model.encoder.config
    H, W = layout.img_size
    patch = layout.patch[0] if layout.modality == "image" else list(layout.patch)
    args = {
        "img_size": [H, W],
        "patch_size": patch,
        "in_chans": layout.in_chans,
        "embed_dim": enc.dim,
        "depth": enc.depth,
        "num_heads": enc.heads,
        "mlp_ratio": enc.mlp_ratio,
        "qkv_bias": True,
        "class_token": enc.class_token,
        "no_embed_class": True,
        "global_pool": "avg",
        "fc_norm": False,
        "num_classes": 0,
    }
    peer = timm.create_model(ARCHITECTURE, pretrained=False, **args)
    ours = model.state_dict()
    state = {
        "patch_embed.proj.weight": layout.conv_weight(ours["embedder.proj.weight"]),
        "patch_embed.proj.bias": ours["embedder.proj.bias"],
        "pos_embed": position_table(model, layout),
        "norm.weight": ours["encoder.norm.weight"],
        "norm.bias": ours["encoder.norm.bias"],
    }
    if enc.class_token:
        state["cls_token"] = ours["encoder.cls_token"]
    for ours_key, peer_key in BLOCK_KEYS.items():
        for i in range(enc.depth):
            state[f"blocks.{i}.{peer_key}"] = ours[f"encoder.blocks.{i}.{ours_key}"]
    peer.load_state_dict({k: v.contiguous() for k, v in state.items()}, strict=True)
    data = {"input_size": (layout.in_chans, H, W), "mean": layout.mean, "std": layout.std, "crop_pct": 1.0}
    return peer.eval(), data


BLOCK_KEYS = {  # mmcore block parameter → timm block parameter
    "norm1.weight": "norm1.weight",
    "norm1.bias": "norm1.bias",
    "attn.qkv.weight": "attn.qkv.weight",
    "attn.qkv.bias": "attn.qkv.bias",
    "attn.proj.weight": "attn.proj.weight",
    "attn.proj.bias": "attn.proj.bias",
    "norm2.weight": "norm2.weight",
    "norm2.bias": "norm2.bias",
    "mlp.0.weight": "mlp.fc1.weight",
    "mlp.0.bias": "mlp.fc1.bias",
    "mlp.2.weight": "mlp.fc2.weight",
    "mlp.2.bias": "mlp.fc2.bias",
}


def position_table(model: Any, layout: Layout | None = None) -> Tensor:
    """[1, N, D] the encoder's patch positions at the trained size: its table, or the sin-cos it computes."""
    embedder = model.embedder
    if embedder.positions != "sincos":
        return embedder.pos_embed.detach()
    return sincos((layout or layout_of(model)).positions(), embedder.dim)


def grid_positions(h: int, w: int) -> Tensor:
    """[1, h*w, 2] (row, col) of each patch, row-major: the image tokenizer's positions."""
    rows, cols = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    return torch.stack([rows, cols], dim=-1).reshape(1, h * w, 2)


def save_timm(peer: nn.Module, data: dict[str, Any], folder: Path, record: dict[str, Any] | None = None) -> None:
    """timm's own folder format (``save_for_hf``: config.json + model.safetensors), which
    ``timm.create_model("local-dir:FOLDER", pretrained=True)`` and ``hf-hub:`` read; ``record`` becomes
    config.json's top-level `RECORD` entry (timm keeps unknown top-level keys out of its configs)."""
    from timm.models import save_for_hf

    save_for_hf(peer, str(folder), safe_serialization=True, data_config=data, model_config={RECORD: record} if record else None)


INPUTS = {  # the record's note for timm users: what the model's input is
    "audio": "mmcore's log-mel crop fbank [B, target_frames, num_mel_bins] as [B, 1, T, F] (time is the height), "
    "normalised (x - mean) / std with pretrained_cfg's mean and std",
    "video": "a clip [B, C, T, H, W] in [0, 1] as clip.flatten(1, 2): [B, C*T, H, W], channel-major, normalised "
    "per input channel with pretrained_cfg's mean and std (each channel's value repeated T times)",
}


def export_timm(model: Any, output: Any) -> tuple[Path, float]:
    """`mm export --to timm` for audio and video (images: mmcore.interop.export_model): the timm folder and
    its record, written only once both encoders agree on random inputs (max abs difference returned)."""
    from mmcore.interop import free_output, write_atomic

    layout = check_exportable(model)
    out = free_output(output)
    peer, data = to_timm(model)
    diff = layout_difference(model, peer, layout)
    record = {"modality": layout.modality, "tokenizer": dict(model.config["tokenizer"]), "input": INPUTS[layout.modality]}
    write_atomic(out, lambda tmp: save_timm(peer, data, tmp, record))
    return out, diff


# -- timm → mmcore -----------------------------------------------------------------


def load_timm(folder: Path) -> tuple[nn.Module, dict[str, Any]]:
    """The timm model a folder holds, its weights checked and loaded strictly, and its pretrained_cfg."""
    timm = timm_module()
    from safetensors import SafetensorError
    from safetensors.torch import load_file
    from timm.models._hub import load_model_config_from_path

    config, weights = folder / "config.json", folder / "model.safetensors"
    if not config.is_file():
        raise DataError(
            f"{folder}: no config.json; accepted: a timm folder (config.json with 'architecture', "
            "model.safetensors) as timm's save_for_hf or mm export --to timm writes"
        )
    try:
        architecture = json.loads(config.read_text(encoding="utf-8"))["architecture"]
        cfg, name, args = load_model_config_from_path(folder)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(
            f"{config}: not a timm config ({type(exc).__name__}: {exc}); accepted: a JSON object "
            "with 'architecture' and 'pretrained_cfg', as timm writes"
        ) from None
    if not weights.is_file():
        raise DataError(f"{folder}: no model.safetensors; accepted: timm weights as safetensors (pickled pytorch_model.bin is never read)")
    try:
        peer = timm.create_model(name, pretrained=False, **args)
    except (RuntimeError, TypeError, ValueError, AssertionError) as exc:
        raise DataError(
            f"{config}: timm cannot build architecture {architecture!r} with model_args {args}: {' '.join(str(exc).split())[:200]}"
        ) from None
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError) as exc:
        raise DataError(f"cannot read weights {weights}: {exc}; expected an intact safetensors file") from None
    expected = peer.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [
        f"{k} {list(state[k].shape)} (expected {list(v.shape)})" for k, v in expected.items() if k in state and state[k].shape != v.shape
    ]
    if missing or unexpected or shapes:
        raise DataError(
            f"weights {weights} do not match timm's {architecture!r}: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}, wrong shapes {shapes[:3]}"
        )
    peer.load_state_dict(state, strict=True)
    return peer.eval(), cfg


def read_record(folder: Path) -> dict[str, Any] | None:
    """config.json's `RECORD` entry (as `export_timm` writes it), or None when there is none."""
    try:
        record = json.loads((Path(folder) / "config.json").read_text(encoding="utf-8")).get(RECORD)
    except (OSError, ValueError, AttributeError):
        return None  # load_timm says what is wrong with the folder
    return record if isinstance(record, dict) else None


def recorded_modality(folder: Path) -> str | None:
    return (read_record(folder) or {}).get("modality")


def import_timm(folder: Path, output: Any) -> tuple[Path, float, list[str]]:
    """`mm import --from timm` of a folder recorded as audio or video: an mmcore MAE folder at ``output``
    (fresh decoder), written only once both encoders agree on random inputs."""
    import dataclasses

    from mmcore.config import ModelConfig
    from mmcore.interop import free_output, model_from_peer, outside_encoder, write_atomic

    out = free_output(output)
    peer, cfg = load_timm(folder)
    config, state, notes = from_timm(peer, cfg, read_record(folder))
    config["decoder"] = dataclasses.asdict(ModelConfig().decoder)  # the recipes' default MAE decoder, fresh
    model = model_from_peer(config, state, folder, "timm", fresh=outside_encoder)
    diff = layout_difference(model, peer, layout_of(model))
    write_atomic(out, model.save_pretrained)
    return out, diff, notes


def differences(peer: nn.Module, modality: str = "image", channels: int = 1) -> list[str]:
    """What in a timm model mmcore's ``modality`` encoder cannot reproduce exactly (empty: it can);
    ``channels``: a video's (recorded), whose frames fill timm's input channels."""
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
        out.append(
            "the final norm is applied after pooling (fc_norm) or not at all (final_norm=False); mmcore "
            "normalises every token before pooling"
        )
    pe = peer.patch_embed
    conv = getattr(pe, "proj", None)
    if (
        type(pe) is not PatchEmbed
        or not isinstance(conv, nn.Conv2d)
        or conv.kernel_size != conv.stride
        or conv.padding != (0, 0)
        or not isinstance(pe.norm, nn.Identity)
        or pe.dynamic_img_pad
        or not pe.flatten
    ):
        out.append("its patch embedding is not one non-overlapping convolution (a norm, padding or overlap)")
    elif modality == "image" and conv.kernel_size[0] != conv.kernel_size[1]:
        out.append(f"patches of {tuple(conv.kernel_size)} pixels; mmcore's are square")
    elif modality == "image" and conv.in_channels not in (1, 3):
        out.append(f"{conv.in_channels} input channels; mmcore's image tokenizer takes 1 or 3")
    elif modality == "audio" and conv.in_channels != 1:
        out.append(f"{conv.in_channels} input channels; a spectrogram is one")
    elif modality == "video" and (channels not in (1, 3) or conv.in_channels % channels):
        out.append(f"{conv.in_channels} input channels are not the recorded {channels} channel(s) × frames")
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
        if type(mlp) is not Mlp or not isinstance(mlp.norm, nn.Identity) or type(mlp.act) is not nn.GELU or mlp.act.approximate != "none":
            out.append(
                f"{where}'s MLP is not Linear-GELU(exact)-Linear ({type(mlp).__name__} with "
                f"{type(getattr(mlp, 'act', None)).__name__}); mmcore's uses exact GELU"
            )
        if any(not isinstance(m, (nn.Identity, LayerScale)) for m in (block.ls1, block.ls2)):
            out.append(f"{where} has a layer scale of its own kind")
        if not (isinstance(block.norm1, nn.LayerNorm) and isinstance(block.norm2, nn.LayerNorm)):
            out.append(f"{where} uses {type(block.norm1).__name__}, not LayerNorm")
        if out:
            break
    if not out and peer.blocks and int(peer.embed_dim * mlp_ratio_of(peer)) != peer.blocks[0].mlp.fc1.out_features:
        out.append(f"MLP width {peer.blocks[0].mlp.fc1.out_features} is not int(dim x ratio) for any ratio")
    return out


def is_sincos(peer: nn.Module, layout: Layout | None = None) -> bool:
    """Whether timm's patch positions are mmcore's sin-cos values (then mmcore computes them)."""
    if layout is None or layout.modality == "image":
        if peer.embed_dim % 4:  # the image embedder needs whole sin-cos pairs per axis
            return False
        positions = grid_positions(*peer.patch_embed.grid_size)
    else:
        positions = layout.positions()
    diff = (patch_positions(peer) - sincos(positions, peer.embed_dim)).abs().max()
    return bool(diff <= POSITION_ATOL)


def mlp_ratio_of(peer: nn.Module) -> float:
    return peer.blocks[0].mlp.fc1.out_features / peer.embed_dim


def patch_positions(peer: nn.Module) -> Tensor:
    """[1, N, D] position rows of the patches (the prefix tokens' rows left out)."""
    pos = peer.pos_embed.detach()
    return pos if peer.no_embed_class else pos[:, peer.num_prefix_tokens :]


def from_timm(
    peer: nn.Module, cfg: dict[str, Any], record: dict[str, Any] | None = None
) -> tuple[dict[str, Any], dict[str, Tensor], list[str]]:
    """(mmcore MAE config, encoder and embedder weights, notes) for a timm ViT with no `differences`:
    an image model, or the modality ``record`` (`export_timm`'s) names with its tokenizer settings."""
    modality = (record or {}).get("modality", "image")
    recorded = dict((record or {}).get("tokenizer") or {})
    if modality not in ("image", "audio", "video"):
        raise NoExactPeer(f"the timm folder is recorded as modality {modality!r}; mmcore maps image, audio and video")
    video_channels = recorded.get("channels", 3) if modality == "video" else 1
    found = differences(peer, modality, video_channels)
    if found:
        raise NoExactPeer(f"timm model differs from mmcore's {modality} encoder: " + "; ".join(found))
    conv = peer.patch_embed.proj
    D, in_chans, (ph, pw) = peer.embed_dim, conv.in_channels, conv.kernel_size
    H, W = peer.patch_embed.grid_size[0] * ph, peer.patch_embed.grid_size[1] * pw
    mean = [float(v) for v in cfg.get("mean", [0.0] * in_chans)]
    std = [float(v) for v in cfg.get("std", [1.0] * in_chans)]
    plain = mean == [0.0] * in_chans and std == [1.0] * in_chans
    C, T = (video_channels, in_chans // video_channels) if modality == "video" else (in_chans, 1)
    if modality != "image" and (len(mean) != in_chans or len(std) != in_chans):
        raise DataError(f"pretrained_cfg mean {mean} / std {std}: expected one value per input channel ({in_chans})")
    layout = Layout(modality, "", (H, W), (ph, pw), C, T, tuple(mean), tuple(std))
    sincos_positions = is_sincos(peer, layout)
    positions = "sincos" if sincos_positions else "learned"
    if modality == "image":
        tokenizer = {
            "image_size": [H, W],
            "patch_size": ph,
            "channels": C,
            "mean": None if plain else mean,
            "std": None if plain else std,
            "positions": positions,
        }
        parts = {"masking": {"name": "random"}, "target": {"name": "pixels"}}
    elif modality == "audio":  # the record's filterbank settings; sizes and statistics from the timm model
        tokenizer = {
            **recorded,
            "target_frames": H,
            "num_mel_bins": W,
            "patch_size": [ph, pw],
            "mean": None if plain else mean[0],
            "std": None if plain else std[0],
            "positions": positions,
        }
        parts = {"masking": {"name": "random"}, "target": {"name": "fbank"}}
    else:
        per_channel = [(mean[c * T : (c + 1) * T], std[c * T : (c + 1) * T]) for c in range(C)]
        if any(len(set(m)) > 1 or len(set(s)) > 1 for m, s in per_channel):
            raise NoExactPeer(
                f"timm's mean {mean} / std {std} differ between the {T} frames of one channel; "
                "mmcore's video tokenizer normalises per channel"
            )
        if not sincos_positions:
            raise NoExactPeer(
                "the timm model's pos_embed is not mmcore's 3-D sin-cos of (t=0, row, col), and the "
                "video tokenizer computes its positions (no position-table option)"
            )
        tokenizer = {
            **recorded,
            "num_frames": T,
            "image_size": [H, W],
            "tubelet_size": [T, ph, pw],
            "channels": C,
            "mean": None if plain else [m[0] for m, _ in per_channel],
            "std": None if plain else [s[0] for _, s in per_channel],
        }
        parts = {"masking": {"name": "tube"}, "target": {"name": "pixels"}}
    depth = len(peer.blocks)
    config = {
        "modality": modality,
        "style": "mae",
        "tokenizer": tokenizer,
        **parts,
        "encoder": {
            "dim": D,
            "depth": depth,
            "heads": peer.blocks[0].attn.num_heads if depth else 1,
            "mlp_ratio": mlp_ratio_of(peer) if depth else 4.0,
            "class_token": peer.has_class_token,
            "norm_eps": peer.norm.eps,
        },
    }
    src = {k: v.detach() for k, v in peer.state_dict().items()}
    state = {
        "embedder.proj.weight": layout.proj_weight(conv.weight.detach()),
        "embedder.proj.bias": src.get("patch_embed.proj.bias", torch.zeros(D)),
        "encoder.norm.weight": src["norm.weight"],
        "encoder.norm.bias": src["norm.bias"],
    }
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
    if modality != "image":
        notes.append(f"input: {INPUTS[modality]}")
    if not sincos_positions:
        notes.append(
            "learned positions (tokenizer.positions: learned) cover the trained grid "
            f"{tuple(peer.patch_embed.grid_size)} only; decoder positions start at sin-cos values"
        )
    if peer.num_classes:
        notes.append(f"classifier head ({peer.num_classes} classes) left out")
    if peer.global_pool == "token":
        notes.append("timm pools the class token (global_pool='token'); mmcore's features average the patch tokens")
    return config, state, notes


def layout_difference(model: Any, peer: nn.Module, layout: Layout, batch: int = 2) -> float:
    """Max abs difference of patch-token states on seeded random inputs of ``layout``'s kind; refused above
    the commands' tolerance (`mmcore.interop.TOLERANCE`)."""
    from mmcore.interop import TOLERANCE

    x = layout.sample(batch, torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours, _ = model.encode({layout.key: x})
    diff = (ours - layout_states(peer, layout, x)).abs().max().item()
    if not diff <= TOLERANCE:
        raise NoExactPeer(
            f"the converted encoders disagree: max abs difference {diff:.3g} on random "
            f"{layout.modality} inputs (accepted: <= {TOLERANCE}); nothing written"
        )
    return diff


def layout_states(peer: nn.Module, layout: Layout, x: Tensor, valid: Tensor | None = None) -> Tensor:
    """timm's patch-token outputs [B, N, D] for the mmcore batch tensor ``x``; ``valid`` [B, N] (the
    tokenizer's, padded spectrograms) masks void patches as attention keys, as mmcore's encoder does."""
    mask = None
    if valid is not None:
        prefix = valid.new_ones(valid.shape[0], peer.num_prefix_tokens)
        mask = torch.cat([prefix, valid], dim=1)[:, None, None, :]  # [B, 1, 1, P+N], True = attended
    with torch.no_grad():
        out = peer.forward_features(normalise(layout.image(x), layout.mean, layout.std), attn_mask=mask)
    return out[:, peer.num_prefix_tokens :]


def peer_states(peer: nn.Module, images: Tensor, mean: list[float] | None, std: list[float] | None) -> Tensor:
    """timm's patch-token outputs [B, N, D] for [0, 1] images, normalised as its data config says."""
    with torch.no_grad():
        return peer.forward_features(normalise(images, mean, std))[:, peer.num_prefix_tokens :]


def normalise(images: Tensor, mean: list[float] | None, std: list[float] | None) -> Tensor:
    """[B, C, H, W] images less ``mean`` over ``std`` per channel (as given when both are None)."""
    if mean is None and std is None:
        return images
    C = images.shape[1]
    m = images.new_tensor(mean or [0.0] * C).view(1, -1, 1, 1)
    s = images.new_tensor(std or [1.0] * C).view(1, -1, 1, 1)
    return (images - m) / s
