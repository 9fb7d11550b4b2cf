"""Predicting one modality of a joint model from the others: ``mm fill MODEL --given image=seven.png --predict text``.

The given modalities are read the way their plugins read user input (a file
through ``Modality.read_file``, or text through the tokenizer's
``parse_prompt``); the predicted one enters as its tokenizer's
``placeholder(length)`` — a sample of the right shape whose values are hidden
entirely and never seen. Discrete modalities are decoded with the shared
confidence-ordered sampler (`mmcore.sampling.commit_confident`), committed
tokens becoming visible to the next step; continuous ones are regressed in
one pass and mapped back through the target's ``to_values``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from mmcore.contract import Tokens
from mmcore.errors import ConfigError, DataError
from mmcore.sampling import commit_confident


def read_given(model, given: list[str]) -> dict[str, Any]:
    """``["image=seven.png", "text=seven"]`` → {stream: sample}; each error names the modality and what it accepts."""
    samples: dict[str, Any] = {}
    for item in given:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ConfigError(f"--given {item!r}: expected MODALITY=FILE or MODALITY=TEXT, e.g. --given image=seven.png")
        if name not in model.streams:
            raise ConfigError(f"--given {name}: not a modality of this model; accepted: {', '.join(model.streams)}")
        if name in samples:
            raise ConfigError(f"--given {name} is given twice; accepted: each modality once")
        stream = model.streams[name]
        reader, prompt = stream.modality.read_file, getattr(stream.tokenizer, "parse_prompt", None)
        if Path(value).is_file() and reader is not None:
            try:
                samples[name] = reader(stream.tokenizer, value)
            except DataError as exc:
                raise DataError(f"--given {name}={value}: not a file the {name!r} modality reads: {exc}") from None
        elif prompt is not None:
            samples[name] = prompt(value, f"--given {name}")
        else:
            raise DataError(f"--given {name}={value}: no such file; the {name!r} modality reads files, not text")
    return samples


def predict_stream(
    model,
    given: dict[str, Any],
    stream: str,
    length: int | None = None,
    steps: int = 8,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tokens]:
    """Predict ``stream`` from the ``given`` samples alone: (token values [1, N, ...], the stream's Tokens)."""
    if stream not in model.streams:
        raise ConfigError(f"--predict {stream}: not a modality of this model; accepted: {', '.join(model.streams)}")
    if stream in given:
        raise ConfigError(f"--predict {stream} is also given; accepted: a modality that is not in --given")
    if not given:
        raise ConfigError("mm fill: nothing given; accepted: at least one --given MODALITY=VALUE")
    placeholder = getattr(model.streams[stream].tokenizer, "placeholder", None)
    if placeholder is None:
        raise ConfigError(f"modality {stream!r} cannot be predicted wholly: its tokenizer has no placeholder()")
    model.eval()
    batch = model.collate([{**given, stream: placeholder(length)}])
    tokens = model.tokenize(batch)
    if "mask_id" in tokens[stream].meta:
        return decode(model, tokens, stream, steps, temperature, generator)
    return model.predict_whole(batch, stream)


@torch.no_grad()
def decode(
    model, tokens: dict[str, Tokens], stream: str, steps: int, temperature: float, generator: torch.Generator | None
) -> tuple[Tensor, Tokens]:
    """Confidence-ordered decoding of a discrete stream; the other streams stay fully visible."""
    if steps < 1:
        raise ConfigError(f"--steps {steps!r} is invalid; accepted: an integer >= 1")
    t = tokens[stream]
    valid = t.valid if t.valid is not None else torch.ones(t.values.shape[:2], dtype=torch.bool, device=t.values.device)
    ids, hidden = t.values.clone(), valid.clone()
    total = hidden.sum(dim=1)
    allowed = t.meta.get("generate_ids", (0, model.streams[stream].tokenizer.vocab_size))
    for step in range(steps):
        if not hidden.any():
            break
        now = {**tokens, stream: replace(t, values=ids)}
        masks = {n: torch.zeros(x.values.shape[:2], dtype=torch.bool, device=x.values.device) for n, x in now.items()}
        masks[stream] = hidden
        budgets = {n: 0 for n in now}
        budgets[stream] = int(hidden.sum(dim=1).max())  # one sample at a time: the rule of mmcore.contract holds
        logits, index = model.predict(now, masks, budgets)[stream]
        slot = hidden.gather(1, index)
        commit_confident(ids, hidden, logits.float(), index, slot, (step, steps, total), allowed, temperature, generator)
    return ids, t
