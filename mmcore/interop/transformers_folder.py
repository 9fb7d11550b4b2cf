"""Reading and writing transformers ``save_pretrained`` folders, the same way for every peer (ViTMAE,
BERT, ESM): safetensors only, quietly (the command's stderr is its one-line report), and every weight
accounted for — a missing, unexpected or misshapen one is an error naming it."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from mmcore.errors import DataError


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """No progress bars or load tables from transformers while loading or saving."""
    from transformers.utils import logging as hf_logging

    bars, verbosity = hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def read_config_json(path: Path) -> Any:
    """A peer's config.json, parsed; a file that cannot be read as JSON is a DataError naming it."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(
            f"{path}: not a transformers config ({type(exc).__name__}: {exc}); accepted: the config.json save_pretrained writes"
        ) from None


def model_type(folder: str | Path) -> str | None:
    """config.json's ``model_type``, or None where there is none to read (the peer's loader then says why)."""
    try:
        cfg = json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return cfg.get("model_type") if isinstance(cfg, dict) else None


def load_pretrained(cls: Any, folder: Path, left_out: tuple[str, ...] = ()) -> tuple[nn.Module, list[str]]:
    """(``cls.from_pretrained(folder)`` in fp32 eval mode, the unexpected weights it left out by design).

    ``left_out``: prefixes of weights the peer may carry that mmcore has no place for (a pooler, a
    next-sentence head); any other unexpected, missing or misshapen weight is a DataError naming it."""
    weights = folder / "model.safetensors"
    if not weights.is_file():
        raise DataError(f"{folder}: no model.safetensors; accepted: weights as safetensors (pickled pytorch_model.bin is never read)")
    with quiet_transformers():
        try:
            peer, info = cls.from_pretrained(str(folder), output_loading_info=True, use_safetensors=True)
        except (OSError, ValueError, TypeError, RuntimeError, KeyError) as exc:
            raise DataError(f"{folder}: transformers cannot load it as {cls.__name__}: {' '.join(str(exc).split())[:200]}") from None
    unexpected = sorted(map(str, info.get("unexpected_keys") or []))
    skipped = [k for k in unexpected if left_out and k.startswith(left_out)]
    wrong = {
        "missing": sorted(map(str, info.get("missing_keys") or [])),
        "unexpected": [k for k in unexpected if k not in skipped],
        "mismatched": sorted(map(str, info.get("mismatched_keys") or [])),
    }
    if any(wrong.values()):
        raise DataError(f"weights {weights} do not match {cls.__name__}: " + ", ".join(f"{k} {v[:5]}" for k, v in wrong.items() if v))
    return peer.float().eval(), skipped


def float_weights(model: nn.Module) -> dict[str, Tensor]:
    """Every tensor of ``model`` as float32 under each of its names, for writing a peer's weights:
    ``state_dict`` stores a tied matrix once (``tokenizer.tie_embeddings``), a peer wants it under both."""
    weights = {k: v.detach().float() for k, v in model.state_dict().items()}
    for name, p in model.named_parameters(remove_duplicate=False):
        weights.setdefault(name, p.detach().float())
    return weights
