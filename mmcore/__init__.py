"""mmcore: masked modeling across modalities — tokenize → mask → predict.

The Python API mirrors ``mm``: `train` is ``mm train``, `from_pretrained` loads
what it wrote, `features` turns samples or files into the ``X`` of scikit-learn.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmcore.commands import Command
from mmcore.contract import Embedder, Head, MaskingPolicy, Modality, Target, Tokenizer, Tokens
from mmcore.errors import ConfigError, DataError, MMCoreError, PluginError
from mmcore.hookspecs import hookimpl

if TYPE_CHECKING:
    import numpy as np

__version__ = "0.1.0"

__all__ = [
    "Command",
    "ConfigError",
    "DataError",
    "Embedder",
    "Head",
    "MMCoreError",
    "MaskingPolicy",
    "Modality",
    "PluginError",
    "Target",
    "Tokenizer",
    "Tokens",
    "features",
    "from_pretrained",
    "hookimpl",
    "train",
]


def from_pretrained(name_or_path: str | os.PathLike[str], **kwargs: Any) -> Any:
    """Load a model folder or Hub repo (``config.json`` + ``model.safetensors``): one modality
    (`mmcore.model.MaskedModel`) or several (`mmcore.joint.JointModel`), as its config says."""
    from mmcore.model import ModelFolder

    return ModelFolder.from_pretrained(name_or_path, **kwargs)


def train(recipe: str | Path, *, resume: bool = False, overwrite: bool = False, **overrides: Any) -> Path:
    """Train a recipe as ``mm train`` does; return the model folder.

    ``overrides`` are recipe keys with ``__`` for each dot, as Python values:
    ``train("image-mae-demo", train__steps=300, model__masking__name="block")``;
    dotted keys work as a dict, ``train(recipe, **{"train.steps": 300})``.
    """
    from mmcore.config import load_recipe
    from mmcore.executor import train as run

    lines = [f"{key.replace('__', '.')}={json.dumps(value, default=str)}" for key, value in overrides.items()]
    return run(load_recipe(recipe, lines), resume=resume, overwrite=overwrite)


def features(model: Any, items: Iterable[Any], batch_size: int = 64) -> np.ndarray:
    """`model.features` of many items as one float32 [N, D] array, in order: the ``X`` of scikit-learn.

    ``items``: samples as the model's ``collate`` takes them (a dataset's items),
    or paths of files its modality reads (as ``mm reconstruct``). Eval mode, no masking.
    """
    import numpy as np

    collate = getattr(model, "collate", None) or model.tokenizer.collate
    device = next(model.parameters()).device
    rows, it, was_training = [], iter(items), model.training
    model.eval()
    try:
        while chunk := list(itertools.islice(it, batch_size)):
            batch = _to(collate([_read(model, x) if isinstance(x, (str, os.PathLike)) else x for x in chunk]), device)
            rows.append(model.features(batch).float().cpu().numpy())
    finally:
        model.train(was_training)
    return np.concatenate(rows) if rows else np.zeros((0, 0), np.float32)


def _read(model: Any, path: str | os.PathLike[str]) -> Any:
    modality = getattr(model, "modality", None)
    if modality is None or modality.read_file is None:
        raise ConfigError(f"cannot read {path}: this model's modality reads no files; accepted: samples as its collate takes")
    return modality.read_file(model.tokenizer, os.fspath(path))


def _to(batch: Any, device: Any) -> Any:
    if isinstance(batch, dict):
        return {k: _to(v, device) for k, v in batch.items()}
    return batch.to(device) if hasattr(batch, "to") and hasattr(batch, "device") else batch
