"""Image row: mmcore's MAE against transformers.ViTMAEForPreTraining, same architecture.

ViTMAE has a CLS token (one extra encoder token); otherwise the layers match.
"""

from __future__ import annotations

import torch

UNIT = "img/s"
PRESETS = {
    # image, patch, channels, enc (dim, depth, heads), dec (dim, depth, heads), batch, mask ratio
    "cpu-tiny": dict(image=32, patch=4, channels=3, enc=(192, 4, 3), dec=(128, 2, 4), batch=64, ratio=0.75),
    "h100": dict(image=224, patch=16, channels=3, enc=(768, 12, 12), dec=(512, 8, 16), batch=256, ratio=0.75),
}


def make_inputs(p: dict, device: torch.device) -> list[torch.Tensor]:
    return [torch.rand(p["batch"], p["channels"], p["image"], p["image"], device=device) for _ in range(4)]


def build_mmcore(p: dict, device: torch.device):
    from mmcore.model import MaskedModel

    config = {
        "modality": "image",
        "style": "mae",
        "tokenizer": {"image_size": [p["image"], p["image"]], "patch_size": p["patch"], "channels": p["channels"]},
        "masking": {"name": "random", "ratio": p["ratio"]},
        "target": {"name": "pixels", "norm_pix": False},
        "encoder": dict(zip(("dim", "depth", "heads"), p["enc"]), mlp_ratio=4.0),
        "decoder": dict(zip(("dim", "depth", "heads"), p["dec"]), mlp_ratio=4.0),
    }
    model = MaskedModel(config).to(device)
    generator = torch.Generator(device=device).manual_seed(0)
    return model, lambda images: model({"images": images}, generator=generator).loss


def build_peer(p: dict, device: torch.device):
    from transformers import ViTMAEConfig, ViTMAEForPreTraining

    (d, depth, heads), (dd, ddepth, dheads) = p["enc"], p["dec"]
    config = ViTMAEConfig(
        image_size=p["image"],
        patch_size=p["patch"],
        num_channels=p["channels"],
        hidden_size=d,
        num_hidden_layers=depth,
        num_attention_heads=heads,
        intermediate_size=4 * d,
        decoder_hidden_size=dd,
        decoder_num_hidden_layers=ddepth,
        decoder_num_attention_heads=dheads,
        decoder_intermediate_size=4 * dd,
        mask_ratio=p["ratio"],
        norm_pix_loss=False,
        attn_implementation="sdpa",
    )
    model = ViTMAEForPreTraining(config).to(device)
    return "transformers.ViTMAEForPreTraining", model, lambda images: model(pixel_values=images).loss


def items_per_batch(p: dict) -> int:
    return p["batch"]
