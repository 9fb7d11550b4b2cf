"""mmcore: masked modeling across modalities — tokenize → mask → predict."""

from __future__ import annotations

from mmcore.commands import Command
from mmcore.contract import Embedder, Head, MaskingPolicy, Modality, Target, Tokenizer, Tokens
from mmcore.errors import ConfigError, DataError, MMCoreError, PluginError
from mmcore.hookspecs import hookimpl

__version__ = "0.1.0"

__all__ = [
    "Command", "ConfigError", "DataError", "Embedder", "Head", "MMCoreError", "MaskingPolicy", "Modality", "PluginError",
    "Target", "Tokenizer", "Tokens", "from_pretrained", "hookimpl",
]


def from_pretrained(name_or_path: str, **kwargs):
    """Load a model folder or Hub repo (``config.json`` + ``model.safetensors``): one modality
    (`mmcore.model.MaskedModel`) or several (`mmcore.joint.JointModel`), as its config says."""
    from mmcore.model import ModelFolder

    return ModelFolder.from_pretrained(name_or_path, **kwargs)
