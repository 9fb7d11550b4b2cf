"""Multimodal row: one joint step over image + text tokens against the two unimodal steps it replaces.

The joint model (`mmcore.joint.JointModel`) and the two single-modality
models have the same encoder and decoder; every step sees the same images and
ids and hides the same share of each modality (MAE style for both). The
"peer" runs the image model's step and the text model's step back to back,
so the ratio is tokens/s of one joint step over tokens/s of the sum of the
unimodal steps at the same token counts: what putting several modalities on
one backbone costs (longer attention) or saves (one optimizer step, one
launch per layer).
"""

from __future__ import annotations

import torch
from torch import nn

from rows.text import _tokenizer_json

UNIT = "tok/s"
PRESETS = {
    # image side, patch, text length, vocabulary, (dim, depth, heads) for encoder and decoder, batch
    "cpu-tiny": dict(image=32, patch=4, length=64, vocab=8000, enc=(192, 4, 3), dec=(128, 2, 4), batch=32),
    "h100": dict(image=224, patch=16, length=256, vocab=30522, enc=(768, 12, 12), dec=(512, 8, 16), batch=128),
}


def _streams(p: dict) -> dict:
    return {
        "image": {
            "tokenizer": {"image_size": [p["image"], p["image"]], "patch_size": p["patch"], "channels": 3},
            "masking": {"name": "random", "ratio": 0.75},
            "target": {"name": "pixels", "norm_pix": False},
        },
        "text": {
            "tokenizer": {"tokenizer_json": _tokenizer_json(p["vocab"]), "max_length": p["length"]},
            "masking": {"name": "bert", "ratio": 0.15},
            "target": {"name": "ids"},
        },
    }


def _backbone(p: dict) -> dict:
    return {
        "encoder": dict(zip(("dim", "depth", "heads"), p["enc"]), mlp_ratio=4.0),
        "decoder": dict(zip(("dim", "depth", "heads"), p["dec"]), mlp_ratio=4.0),
    }


def items_per_batch(p: dict) -> int:
    return p["batch"] * ((p["image"] // p["patch"]) ** 2 + p["length"])


def make_inputs(p: dict, device: torch.device) -> list[dict]:
    return [
        {
            "images": torch.rand(p["batch"], 3, p["image"], p["image"], device=device),
            "ids": torch.randint(1000, p["vocab"], (p["batch"], p["length"]), device=device),
        }
        for _ in range(4)
    ]


def build_mmcore(p: dict, device: torch.device):
    from mmcore.joint import JointModel

    model = JointModel({"modalities": _streams(p), "style": "mae", **_backbone(p)}).to(device)
    generator = torch.Generator(device=device).manual_seed(0)
    present = {"image": [True] * p["batch"], "text": [True] * p["batch"]}
    word_ids = torch.arange(p["length"], device=device).expand(p["batch"], -1)

    def step(x):
        text = {"ids": x["ids"], "word_ids": word_ids}
        return model({"image": {"images": x["images"]}, "text": text, "present": present}, generator=generator).loss

    return model, step


def build_peer(p: dict, device: torch.device):
    from mmcore.model import MaskedModel

    streams = _streams(p)
    models = nn.ModuleDict({name: MaskedModel({"modality": name, "style": "mae", **s, **_backbone(p)}) for name, s in streams.items()}).to(
        device
    )
    generator = torch.Generator(device=device).manual_seed(0)
    word_ids = torch.arange(p["length"], device=device).expand(p["batch"], -1)

    def step(x):
        image = models["image"]({"images": x["images"]}, generator=generator).loss
        return image + models["text"]({"ids": x["ids"], "word_ids": word_ids}, generator=generator).loss

    return "mmcore image step + text step", models, step
