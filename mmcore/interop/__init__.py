"""Weights out to peer libraries and back in, only where outputs stay equal.

`export_model` writes an mmcore model in a peer's own folder format and
`import_model` turns a peer's folder into an mmcore model folder. Neither
converts approximately: an architecture the peer cannot reproduce is refused
with what differs (`NoExactPeer`), and every conversion is checked on random
inputs before anything is written — the measured max abs difference is
returned. Output folders are written beside their place and renamed into it,
so a refusal or a crash leaves nothing half-written. Peers now: timm's
``VisionTransformer`` for image, audio (spectrogram) and video (one tubelet
spanning the clip) encoders both ways (`mmcore.interop.timm_vit`),
transformers' ``ViTMAEForPreTraining`` for image MAEs both ways, decoder included
(`mmcore.interop.hf_vitmae`), and, asked first, those plugins add through their ``register_peers``
hook: transformers' ``BertForMaskedLM`` for text models both ways (mm-text's ``mm_text.hf_bert``)
and ``EsmForMaskedLM`` (ESM-2) for protein models both ways (mm-protein's ``mm_protein.hf_esm``).
The core imports no plugin: those mappings need the modality's own tokenizer or alphabet.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from mmcore.errors import ConfigError, DataError, MMCoreError
from mmcore.interop.timm_vit import NoExactPeer
from mmcore.plugins import PEERS, get_registry, install_hint

TOLERANCE = 1e-4  # max abs difference the commands accept on random inputs (fp32; tiny models reach ~1e-6)

PLUGIN_OF_KIND = {"bert": "mm-text", "esm": "mm-protein"}  # transformers model_type → the plugin that imports it

NOT_YET: dict[tuple[str, str], str] = {  # (peer, modality) → why there is no exact mapping yet
    ("transformers", "video"): "the natural peer, transformers' VideoMAEModel (Conv3d tubelets), is not mapped yet; "
    "--to timm is exact where one tubelet spans the clip",
    ("transformers", "audio"): "transformers has no AudioMAE, and its ASTModel always prepends two tokens (class and "
    "distillation; mmcore has at most a class token); --to timm is exact",
}

__all__ = ["PEERS", "NoExactPeer", "export_model", "import_model"]


def export_model(model: Any, to: str, output: str | os.PathLike[str]) -> tuple[Path, float]:
    """Write ``model`` (an mmcore model, folder or Hub id) as a ``to`` peer folder at ``output``.

    Returns (the folder, max abs difference between the two encoders' outputs on random inputs)."""
    from mmcore.interop import timm_vit

    check_peer(to)
    model = load_mmcore(model)
    modality = model.config.get("modality")
    if "modalities" in model.config:
        raise NoExactPeer(
            f"no exact {to} peer for a joint model (streams {sorted(model.config['modalities'])}): peers hold one modality's encoder"
        )
    export = get_registry().exporter(to, modality)
    if export is not None:  # a plugin's peer (register_peers): BertForMaskedLM for text, EsmForMaskedLM for protein
        return export(model, output)
    if (to, modality) == ("transformers", "image"):  # ViTMAEForPreTraining (mmcore.interop.hf_vitmae)
        from mmcore.interop import hf_vitmae

        return hf_vitmae.export_vitmae(model, output)
    if (to, modality) in (("timm", "audio"), ("timm", "video")):  # spectrogram / frames-as-channels layouts
        return timm_vit.export_timm(model, output)
    if to != "timm" or modality != "image":
        reason = NOT_YET.get((to, modality), "mmcore maps only image, audio and video encoders, onto timm's VisionTransformer")
        raise NoExactPeer(f"no exact {to} peer for modality {modality!r} yet: {reason}")
    out = free_output(output)
    peer, data = timm_vit.to_timm(model)
    diff = encoder_difference(model, lambda x: timm_vit.peer_states(peer, x, data["mean"], data["std"]))
    write_atomic(out, lambda tmp: timm_vit.save_timm(peer, data, tmp))
    return out, diff


def import_model(folder: str | os.PathLike[str], source: str, output: str | os.PathLike[str]) -> tuple[Path, float, list[str]]:
    """An mmcore image MAE folder at ``output`` whose encoder holds the ``source`` peer folder's weights.

    Returns (the folder, max abs encoder difference on random inputs, notes such as what was left out)."""
    from mmcore.config import ModelConfig
    from mmcore.interop import hf_vitmae, timm_vit

    check_peer(source)
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise DataError(f"no peer folder at {folder}: expected a folder with config.json and model.safetensors")
    if source == "transformers":  # a plugin's importer for config.json's model_type (bert, esm); vit_mae (and anything else) below
        from mmcore.interop.transformers_folder import model_type

        kind = model_type(folder)
        import_ = get_registry().importer(source, kind)
        if import_ is not None:
            return import_(folder, output)
        if kind in PLUGIN_OF_KIND:  # a known peer whose plugin is not installed: say which to install
            plugin = PLUGIN_OF_KIND[kind]
            raise NoExactPeer(
                f"{folder}: model_type {kind!r} is imported by the {plugin} plugin, which is not installed; {install_hint(plugin)}"
            )
    if source == "timm" and timm_vit.recorded_modality(folder) in ("audio", "video"):  # config.json's "mmcore" entry
        return timm_vit.import_timm(folder, output)
    out = free_output(output)
    if source == "timm":
        peer, cfg = timm_vit.load_timm(folder)
        config, state, notes = timm_vit.from_timm(peer, cfg)
        config["decoder"] = dataclasses.asdict(ModelConfig().decoder)  # the recipes' default MAE decoder, fresh
        theirs = timm_vit.peer_states
    else:
        peer, processor = hf_vitmae.load_vitmae(folder)
        config, state, notes = hf_vitmae.from_vitmae(peer, processor)
        theirs = hf_vitmae.peer_states
    model = model_from_peer(config, state, folder, source, fresh=outside_encoder)
    tok = model.tokenizer
    diff = encoder_difference(model, lambda x: theirs(peer, x, tok.mean, tok.std))
    if source == "transformers":  # ViTMAE's decoder imported too: its pixels and loss checked as well
        diff = max(diff, hf_vitmae.decoder_difference(model, peer))
    write_atomic(out, model.save_pretrained)
    return out, diff, notes


# -- small pieces ------------------------------------------------------------------


def check_peer(peer: str) -> None:
    if peer not in PEERS:
        raise ConfigError(f"unknown peer library {peer!r}; accepted: {', '.join(PEERS)}")


def load_mmcore(model: Any) -> Any:
    """A model as given, or loaded from a model folder (a run folder's ``model/`` too) or Hub id."""
    if isinstance(model, torch.nn.Module):
        return model
    from mmcore import from_pretrained

    path = Path(model).expanduser()
    if (path / "model" / "config.json").is_file() and not (path / "config.json").is_file():
        path = path / "model"
    return from_pretrained(str(path) if path.exists() else model)


def encoder_difference(model: Any, theirs: Callable[[torch.Tensor], torch.Tensor], batch: int = 2) -> float:
    """Max abs difference of patch-token states (``theirs(images)``: the peer's [B, N, D]) on seeded random
    [0, 1] images; refused above `TOLERANCE`."""
    tok = model.tokenizer
    images = torch.rand(batch, tok.channels, *tok.image_size, generator=torch.Generator().manual_seed(0))
    ours, _ = model.encode({"images": images})
    diff = (ours - theirs(images)).abs().max().item()
    if not diff <= TOLERANCE:
        raise NoExactPeer(
            f"the converted encoders disagree: max abs difference {diff:.3g} on random images (accepted: <= {TOLERANCE}); nothing written"
        )
    return diff


def model_from_peer(
    config: dict[str, Any], state: dict[str, torch.Tensor], folder: Any, peer: str, fresh: Callable[[str], bool] = lambda key: False
) -> Any:
    """The mmcore model a converter's ``config`` describes, holding the peer's ``state``. Every weight must be
    mapped except those ``fresh(key)`` names (a decoder the peer lacks); anything else is a mapping bug, never
    the user's, and is said plainly."""
    from mmcore.config import check_model_config
    from mmcore.model import MaskedModel, record_sources

    config.update(record_sources(config))
    config = check_model_config(config, f"the model built from {folder}")
    model = MaskedModel(config).eval()
    missing, unexpected = model.load_state_dict(state, strict=False)
    left = [k for k in missing if not fresh(k)]
    if unexpected or left:
        raise MMCoreError(f"internal: {peer} weights map onto unknown {unexpected[:3]} or leave {left[:3]} unset")
    return model


def outside_encoder(key: str) -> bool:
    """Weights an encoder-only peer (timm, or ViTMAE before its decoder is read) leaves fresh: the MAE decoder's."""
    return not key.startswith(("embedder.", "encoder.")) or key == "embedder.decoder_pos_embed"


def free_output(output: str | os.PathLike[str]) -> Path:
    """``output`` as a path that is free (or an empty folder): exports never merge into or replace a folder."""
    out = Path(output).expanduser()
    if out.exists() and not (out.is_dir() and not any(out.iterdir())):
        raise DataError(f"output {out} already exists; accepted: a new folder path (nothing is overwritten)")
    return out


def write_atomic(out: Path, fill: Callable[[Path], Any]) -> None:
    """``fill(tmp)`` writes a folder beside ``out``, renamed into place only once it is whole."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        fill(tmp)
        if out.is_dir():
            out.rmdir()  # empty (free_output checked): rename replaces it
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
