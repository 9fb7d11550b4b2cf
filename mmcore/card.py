"""The model card: README.md of a model folder, metadata through huggingface_hub.

The run facts the card shows (batch, learning rate, metrics, ...) are also kept
in its YAML metadata under ``mmcore``, so the card can be rendered again later
(``mm card``, ``mm push``) from the folder alone.
"""

from __future__ import annotations

import re
from typing import Any

from huggingface_hub import ModelCard, ModelCardData

TEMPLATE = """---
{metadata}
---

# {name}

{description}

A masked-modeling model for **{modality}**, trained with
[mmcore](https://github.com/mmcore/mmcore) ({style} style: {style_text}).

## Use

```python
import mmcore
model = mmcore.from_pretrained("{repo}")
```

or reconstruct a file of your own: `mm reconstruct {repo} INPUT -o out.png`.

## Training

| | |
|---|---|
| masking | {masking} |
| target | {target} |
| encoder | {encoder} |
| decoder | {decoder} |
| steps | {steps} |
| effective batch | {effective_batch} (per device {batch_size} × accumulation {grad_accum} × {world_size} processes) |
| learning rate | {lr} (base {base_lr} × {effective_batch} / 256) |
| precision | {precision} |

## Results

{results}

{picture}

## Recipe

```yaml
{recipe}
```
"""

# run facts kept under `mmcore` in the metadata (license and dataset have their own keys, the recipe its section)
FACTS = (
    "name",
    "description",
    "steps",
    "effective_batch",
    "batch_size",
    "grad_accum",
    "world_size",
    "base_lr",
    "lr",
    "precision",
    "metrics",
    "picture",
)

STYLE_TEXT = {
    "mae": "the encoder sees visible tokens only, a light decoder predicts the hidden ones",
    "bert": "hidden tokens are replaced at the input, the head runs at hidden positions",
}


def render_card(config: dict[str, Any], info: dict[str, Any], repo: str = "path/to/model") -> str:
    """``config`` is the model's config.json; ``info`` holds run facts (metrics, batch, recipe)."""
    streams = _streams(config)
    metrics = info.get("metrics", {})
    modality_tags = list(dict.fromkeys(s["modality"] for s in streams.values()))
    masking_tags = list(dict.fromkeys(f"masking-{s['masking'].get('name')}" for s in streams.values()))
    data = ModelCardData(
        library_name="mmcore",
        license=info.get("license", "apache-2.0"),
        tags=["mmcore", "masked-modeling", *modality_tags, *masking_tags] + (["multimodal"] if len(streams) > 1 else []),
        datasets=[info["dataset"]] if info.get("dataset") else None,
        metrics=sorted(metrics) or None,
        mmcore={k: info[k] for k in FACTS if info.get(k) is not None} or None,
    )
    results = "\n".join(f"- {k}: {v:.4f}" if isinstance(v, float) else f"- {k}: {v}" for k, v in metrics.items())
    picture = f"![original | masked | reconstruction]({info['picture']})" if info.get("picture") else ""
    text = TEMPLATE.format(
        metadata=data.to_yaml(),
        name=info.get("name", "mmcore model"),
        description=info.get("description", ""),
        modality=" + ".join(streams),
        style=config.get("style") or "default",
        style_text=STYLE_TEXT.get(config.get("style") or "mae", ""),
        repo=repo,
        masking=_per_stream(streams, "masking"),
        target=_per_stream(streams, "target"),
        encoder=_options(config["encoder"]),
        decoder=_options(config["decoder"]),
        results=results or "(no metrics recorded)",
        picture=picture,
        recipe=info.get("recipe", "").rstrip(),
        **{k: info.get(k, "?") for k in ("steps", "effective_batch", "batch_size", "grad_accum", "world_size", "precision")},
        lr=_number(info.get("lr"), ".3g"),
        base_lr=_number(info.get("base_lr"), "g"),
    )
    return str(ModelCard(text))


def card_info(text: str) -> dict[str, Any]:
    """The run facts of a card written by `render_card` (older cards: what their metadata says)."""
    data = ModelCard(text).data.to_dict()
    info = dict(data.get("mmcore") or {})
    info.setdefault("license", data.get("license"))
    if data.get("datasets"):
        info.setdefault("dataset", data["datasets"][0])
    recipe = re.search(r"^## Recipe\n\n```yaml\n(.*?)^```", text, flags=re.S | re.M)
    if recipe and recipe.group(1).strip():
        info["recipe"] = recipe.group(1)
    repo = re.search(r'^model = mmcore\.from_pretrained\("([^"]+)"\)$', text, flags=re.M)
    if repo:
        info["repo"] = repo.group(1)
    return {k: v for k, v in info.items() if v is not None}


def _number(value: Any, spec: str) -> str:
    """A card made without run facts (``push_to_hub`` of an in-memory model) says ``?``."""
    return "?" if value is None else format(value, spec)


def _streams(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{name: {modality, masking, target}}: one entry for a single-modality model, one per stream for a joint one."""
    if "modalities" in config:
        return {
            name: {"modality": e.get("modality") or name, "masking": e.get("masking") or {}, "target": e.get("target") or {}}
            for name, e in config["modalities"].items()
        }
    return {config["modality"]: {"modality": config["modality"], "masking": config["masking"], "target": config["target"]}}


def _per_stream(streams: dict[str, dict[str, Any]], part: str) -> str:
    if len(streams) == 1:
        return _options(next(iter(streams.values()))[part])
    return "; ".join(f"{name}: {_options(s[part])}" for name, s in streams.items())


def _options(options: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in options.items())
